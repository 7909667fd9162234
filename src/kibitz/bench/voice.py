"""`kibitz bench voice`: the voice pipeline measured end to end, on real models and real (synthetic) speech.

Parts (each a function returning a typed record; `run_voice_bench` runs the chosen ones and writes results.json):
- wer: a voice speaks the sentences of data/voice_sentences.yaml, Whisper hears them (word error rate, Korean and
  Japanese character error rate; bootstrap 95 % intervals over sentences);
- latency: the full live path (Voice + Companion + a real LLM): the end of a spoken question → the first sample of
  the answer played, in real time;
- bargein: the player talks over the companion's line (its echo in the microphone): how fast playback stops, and
  how often the companion's own echo or loud game music is taken for the player;
- rtf: real-time factors on one thread (Whisper; each TTS engine);
- ram: resident memory with the LLM, Whisper, the voice and the VAD loaded.

No sound device is used: questions are fed to `voice.ear.hear` in 20 ms blocks at real-time pace, and playback runs
on the ClockPlayer, whose blocks are timed as they are "played".
"""

from __future__ import annotations

import contextlib
import os
import random
import subprocess
import threading
import time
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from kibitz.bench.stats import percentile

Progress = Callable[[str, int, int], None]
"""progress(part, done, total)."""

SOUNDING = 1e-3
"""A played block whose peak is above this is sound (the ClockPlayer's silence is exact zeros)."""
BLOCK = 320
"""Samples in a 20 ms microphone block at 16 kHz."""

TARGETS = {
    "en_wer_piper": 0.10,
    "latency_p50_s": 1.2,
    "latency_p95_s": 2.0,
    "stop_p95_s": 0.200,
    "ram_gb": 3.5,
}

LINE = (
    "Oh no, the goomba got you again right at the first pipe. Try a running jump next time, and hold the "
    "button a little longer. Watch the timing of the moving platforms too, they speed up near the end of the "
    "level. You can do it, I believe in you!"
)
"""The companion's long fixed line in the barge-in part (about 12 s spoken)."""


def _noop(part: str, done: int, total: int) -> None:
    return None


# -- figures ----------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Figure:
    """One measured figure with its sample count, 95 % interval and target (None when it has none)."""

    value: float | None
    low: float | None
    high: float | None
    n: int
    target: float | None = None
    """The figure must be at most this."""
    unit: str = ""

    @property
    def met(self) -> bool | None:
        if self.target is None or self.value is None:
            return None
        return self.value <= self.target

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "met": self.met}


def _ratio(num: np.ndarray, den: np.ndarray) -> float:
    total = float(den.sum())
    return float(num.sum()) / total if total > 0 else float("nan")


def bootstrap_ratio(num: list[float], den: list[float], seed: int = 0, rounds: int = 2000) -> tuple[float, float]:
    """95 % percentile-bootstrap interval of sum(num)/sum(den), resampling the items (sentences) with replacement."""
    if not num:
        return (float("nan"), float("nan"))
    a, b = np.asarray(num, np.float64), np.asarray(den, np.float64)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(a), size=(rounds, len(a)))
    sums_b = b[idx].sum(axis=1)
    stats = a[idx].sum(axis=1) / np.where(sums_b > 0, sums_b, np.nan)
    stats = stats[~np.isnan(stats)]
    return (float(np.percentile(stats, 2.5)), float(np.percentile(stats, 97.5)))


def ratio_figure(num: list[float], den: list[float], seed: int, target: float | None = None, unit: str = "") -> Figure:
    value = _ratio(np.asarray(num, np.float64), np.asarray(den, np.float64)) if num else None
    low, high = bootstrap_ratio(num, den, seed)
    return Figure(value, low if num else None, high if num else None, len(num), target, unit)


def quantile_figure(values: list[float], q: float, target: float | None = None, seed: int = 0) -> Figure:
    """The q-th percentile with a distribution-free 95 % interval (order statistics of the binomial, Wilson-style
    normal approximation; at small n it spans the whole sample)."""
    if not values:
        return Figure(None, None, None, 0, target, "s")
    ordered = sorted(values)
    n = len(ordered)
    p = q / 100
    half = 1.96 * (n * p * (1 - p)) ** 0.5
    lo_rank = max(0, int(np.floor(n * p - half)) - 1)
    hi_rank = min(n - 1, int(np.ceil(n * p + half)))
    return Figure(percentile(ordered, q), ordered[lo_rank], ordered[hi_rank], n, target, "s")


def proportion_figure(k: int, n: int, target: float | None = None) -> Figure:
    from kibitz.bench.stats import wilson

    low, high = wilson(k, n)
    return Figure(k / n if n else None, low, high, n, target)


# -- speech ---------------------------------------------------------------------------------------------------


@cache
def sentences() -> dict[str, list[str]]:
    """data/voice_sentences.yaml: en, ko, ja, questions, barge_in."""
    raw = yaml.safe_load((resources.files("kibitz.bench") / "data" / "voice_sentences.yaml").read_text("utf-8"))
    return {key: [str(s) for s in value] for key, value in raw.items()}


def espeak(text: str, voice: str = "en-us") -> np.ndarray:
    """eSpeak NG saying `text`, at 16 kHz."""
    from kibitz.voice import audio

    wav = subprocess.run(
        ["espeak-ng", "-v", voice, "--stdout", "--", text], capture_output=True, check=True, timeout=30
    ).stdout
    samples, rate = audio.decode_wav_bytes(wav)
    return audio.resample(samples, rate)


def speak(voice_name: str, text: str) -> tuple[np.ndarray, float]:
    """A catalogue voice saying `text`, at 16 kHz, and the seconds synthesis took."""
    from kibitz.voice import audio
    from kibitz.voice.tts import load_voice, voices

    engine = load_voice(voices()[voice_name])
    start = time.perf_counter()
    samples = engine.synthesize(text)
    took = time.perf_counter() - start
    return audio.resample(samples, engine.rate), took


def voiced_span(samples: np.ndarray, floor: float = 0.01) -> tuple[int, int]:
    """First and last sample index above `floor` × the peak (what is spoken, without leading/trailing silence)."""
    if not len(samples):
        return (0, 0)
    loud = np.flatnonzero(np.abs(samples) > floor * float(np.abs(samples).max()))
    return (int(loud[0]), int(loud[-1])) if len(loud) else (0, 0)


def chiptune(seconds: float, seed: int, level: float = 0.5) -> np.ndarray:
    """A synthetic game tune at 16 kHz: a square-wave melody over a square-wave bass, with noise drums, loud."""
    from kibitz.voice.records import RATE

    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    beat = 60 / rng.uniform(130, 170) / 2  # eighth notes
    scale = 440 * 2 ** (np.array([0, 2, 4, 5, 7, 9, 11, 12, 14, 16]) / 12)
    notes = rng.choice(scale, size=int(seconds / beat) + 2)
    bass = rng.choice(scale[:5] / 4, size=int(seconds / (4 * beat)) + 2)
    step = (t // beat).astype(int)
    melody = np.sign(np.sin(2 * np.pi * notes[step] * t))
    low = np.sign(np.sin(2 * np.pi * bass[step // 4] * t))
    envelope = np.exp(-(t % beat) / (beat * 0.6))
    drums = np.zeros(n)
    hit = int(0.06 * RATE)
    for k in range(0, int(seconds / beat), 2):
        at = int(k * beat * RATE)
        burst = rng.normal(0, 1, min(hit, n - at)) * np.exp(-np.arange(min(hit, n - at)) / (0.015 * RATE))
        drums[at : at + len(burst)] += burst
    mix = 0.45 * melody * envelope + 0.3 * low + 0.35 * drums
    return (level * mix / max(1e-9, float(np.abs(mix).max()))).astype(np.float32)


# -- word error rate -----------------------------------------------------------------------------------------


def _normalise(text: str) -> str:
    """Lower case, punctuation (every Unicode P* character) to spaces, single spaces: generic only."""
    kept = "".join(" " if unicodedata.category(c).startswith("P") else c for c in text.lower())
    return " ".join(kept.split())


def word_edits(truth: str, heard: str) -> tuple[int, int]:
    """(edits, reference words) of one sentence, after generic normalisation (jiwer)."""
    import jiwer

    ref, hyp = _normalise(truth), _normalise(heard)
    if not ref:
        return (len(hyp.split()), 0)
    if not hyp:
        return (len(ref.split()), len(ref.split()))
    out = jiwer.process_words(ref, hyp)
    return (out.substitutions + out.deletions + out.insertions, out.hits + out.substitutions + out.deletions)


def char_edits(truth: str, heard: str) -> tuple[int, int]:
    """(edits, reference characters) of one sentence: punctuation and spaces removed (jiwer)."""
    import jiwer

    ref, hyp = _normalise(truth).replace(" ", ""), _normalise(heard).replace(" ", "")
    if not ref:
        return (len(hyp), 0)
    if not hyp:
        return (len(ref), len(ref))
    out = jiwer.process_characters(ref, hyp)
    return (out.substitutions + out.deletions + out.insertions, out.hits + out.substitutions + out.deletions)


@dataclass(slots=True)
class Heard:
    text: str
    heard: str
    word_edits: int
    words: int
    char_edits: int
    chars: int
    audio_s: float
    asr_s: float
    tts_s: float


@dataclass(slots=True)
class WerSet:
    """One language spoken by one voice and heard by Whisper."""

    name: str
    language: str
    voice: str
    wer: Figure
    cer: Figure | None
    items: list[Heard] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "language": self.language,
            "voice": self.voice,
            "wer": self.wer.to_json(),
            "cer": self.cer.to_json() if self.cer else None,
            "items": [asdict(i) for i in self.items],
        }


WER_SETS = (
    # name, language, voice (a catalogue voice, or espeak:<espeak voice>), figures
    ("en-piper", "en", "joe"),
    ("en-espeak", "en", "espeak:en-us"),
    ("ko-espeak", "ko", "espeak-ko"),
    ("ja-kokoro", "ja", "alpha"),
)


def wer_part(sizes: dict[str, int], seed: int = 0, progress: Progress = _noop) -> list[WerSet]:
    """Each set's sentences spoken, resampled to 16 kHz and transcribed as one final segment (Whisper, one thread)."""
    from kibitz.voice.asr import Transcriber
    from kibitz.voice.records import RATE, SpeechSegment

    texts = sentences()
    transcribers: dict[str, Transcriber] = {}
    out = []
    for name, language, voice in WER_SETS:
        chosen = texts[language][: sizes[language]]
        if not chosen:
            continue
        if language not in transcribers:
            transcribers[language] = Transcriber(language=language, cpu_threads=1)
        asr = transcribers[language]
        items = []
        for i, text in enumerate(chosen):
            if voice.startswith("espeak:"):
                start = time.perf_counter()
                samples = espeak(text, voice.split(":", 1)[1])
                tts_s = time.perf_counter() - start
            else:
                samples, tts_s = speak(voice, text)
            got = asr.transcribe(SpeechSegment(samples, 0.0, len(samples) / RATE, True))
            we, wn = word_edits(text, got.text)
            ce, cn = char_edits(text, got.text)
            items.append(Heard(text, got.text, we, wn, ce, cn, len(samples) / RATE, got.asr_s, tts_s))
            progress(f"wer {name}", i + 1, len(chosen))
        wer = ratio_figure([i.word_edits for i in items], [i.words for i in items], seed)
        if name == "en-piper":
            wer.target = TARGETS["en_wer_piper"]
        cer = None
        if language in ("ko", "ja"):
            cer = ratio_figure([i.char_edits for i in items], [i.chars for i in items], seed)
        if language == "ja":
            wer = Figure(None, None, None, 0)  # Japanese has no spaces between words: CER only
        out.append(WerSet(name, language, voice, wer, cer, items))
    return out


# -- real-time factors ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class RtfResult:
    asr: Figure
    """Whisper seconds of compute per second of audio, one thread, over the English (Piper) set."""
    tts: dict[str, Figure]
    """Per engine (piper, kokoro, espeak): synthesis seconds per second of audio, one thread."""

    def to_json(self) -> dict[str, Any]:
        return {"asr": self.asr.to_json(), "tts": {k: v.to_json() for k, v in self.tts.items()}}


def rtf_part(
    en_sentences: int, tts_sentences: int, seed: int = 0, wer: list[WerSet] | None = None, progress: Progress = _noop
) -> RtfResult:
    """ASR on one thread (reusing the wer part's English Piper transcriptions, made on one thread, when it ran);
    TTS per engine on one thread (KIBITZ_TTS_THREADS, default 1)."""
    from kibitz.voice.asr import Transcriber
    from kibitz.voice.records import RATE, SpeechSegment
    from kibitz.voice.tts import load_voice, voices

    texts = sentences()
    done = next((w for w in wer or [] if w.name == "en-piper"), None)
    if done is not None:
        compute = [i.asr_s for i in done.items]
        heard = [i.audio_s for i in done.items]
    else:
        asr = Transcriber(language="en", cpu_threads=1)
        compute, heard = [], []
        chosen = texts["en"][:en_sentences]
        for i, text in enumerate(chosen):
            samples, _ = speak("joe", text)
            got = asr.transcribe(SpeechSegment(samples, 0.0, len(samples) / RATE, True))
            compute.append(got.asr_s)
            heard.append(len(samples) / RATE)
            progress("rtf asr", i + 1, len(chosen))
    asr_figure = ratio_figure(compute, heard, seed)
    tts: dict[str, Figure] = {}
    for engine, voice, language in (("piper", "joe", "en"), ("kokoro", "alpha", "ja"), ("espeak", "espeak-en", "en")):
        load_voice(voices()[voice]).synthesize("Warm up.")  # the first call loads and warms the model
        took, length = [], []
        chosen = texts[language][:tts_sentences]
        for i, text in enumerate(chosen):
            samples, seconds = speak(voice, text)
            took.append(seconds)
            length.append(len(samples) / RATE)
            progress(f"rtf tts {engine}", i + 1, len(chosen))
        tts[engine] = ratio_figure(took, length, seed)
    return RtfResult(asr_figure, tts)


# -- the live stack: a companion with a voice ----------------------------------------------------------------


def memory_now() -> dict[str, float]:
    """This process's resident memory now (VmRSS) and its peak so far (VmHWM), in GB (Linux)."""
    out: dict[str, float] = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":", 1)
                out["rss_gb" if key == "VmRSS" else "peak_gb"] = int(value.split()[0]) / 1024 / 1024
    except OSError:
        pass
    return out


class Stream:
    """The microphone and the speakers of a scripted run: every played block is timed (and kept, at 16 kHz, as the
    echo the microphone hears 60 ms later at 0.4), and `feed` hands the Ear 20 ms blocks at real-time pace."""

    def __init__(self, echo: bool = True, noise: float = 0.002, seed: int = 0) -> None:
        self.echo = echo
        self.noise = noise
        self.rng = np.random.default_rng(seed)
        self.played: list[tuple[float, float]] = []
        """(perf_counter, peak) of every played block."""
        self._mirror: list[np.ndarray] = []
        self._lock = threading.Lock()
        self._delay = np.zeros(int(0.06 * 16_000), np.float32)
        self.t = 0.0
        self._next: float | None = None
        self.rate = 48_000

    def sink(self, block: np.ndarray) -> None:
        from kibitz.voice import audio

        self.played.append((time.perf_counter(), float(np.abs(block).max()) if len(block) else 0.0))
        if self.echo:
            heard = audio.resample(block, self.rate, 16_000)
            with self._lock:
                self._mirror.append(heard)

    def _reference(self, n: int) -> np.ndarray:
        with self._lock:
            out = np.concatenate(self._mirror) if self._mirror else np.zeros(0, np.float32)
            self._mirror.clear()
            # The echo is tied to the playback clock: when the microphone feed fell behind (a busy machine), what
            # played meanwhile is not heard seconds late; only the newest block (and 20 ms of jitter) is kept.
            if len(out) > 2 * n:
                out = out[len(out) - 2 * n :]
            if len(out) < n:
                out = np.concatenate([out, np.zeros(n - len(out), np.float32)])
            else:
                self._mirror.append(out[n:])
        return out[:n]

    def feed(self, hear: Callable[[Any], None], player: np.ndarray | None = None) -> float:
        """One 20 ms block: noise, the echo, and `player` (≤ 320 samples) mixed; returns the wall time it was fed."""
        from kibitz.voice.records import AudioChunk

        mic = self.rng.normal(0, self.noise, BLOCK).astype(np.float32)
        if self.echo:
            self._delay = np.concatenate([self._delay, self._reference(BLOCK)])
            mic += 0.4 * self._delay[:BLOCK]
            self._delay = self._delay[BLOCK:]
        if player is not None and len(player):
            mic[: len(player)] += player
        if self._next is None:
            self._next = time.perf_counter()
        delay = self._next - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        fed = time.perf_counter()
        hear(AudioChunk(mic, self.t))
        self.t += BLOCK / 16_000
        self._next += BLOCK / 16_000
        if self._next < time.perf_counter() - 1.0:
            self._next = time.perf_counter()  # far behind (a stalled machine): do not rush
        return fed

    def feed_audio(self, hear: Callable[[Any], None], samples: np.ndarray) -> list[float]:
        """A whole recording block by block; the wall time each block was fed."""
        return [self.feed(hear, samples[i : i + BLOCK]) for i in range(0, len(samples), BLOCK)]

    def first_sound(self, after: float, before: float = float("inf")) -> float | None:
        return next((w for w, peak in self.played if after <= w < before and peak > SOUNDING), None)

    def last_sound(self, after: float = 0.0, before: float = float("inf")) -> float | None:
        return next((w for w, peak in reversed(self.played) if after <= w < before and peak > SOUNDING), None)


def say(voice: Any, text: str, trigger: str = "death") -> Any:
    """Hand the voice a whole line in 5-character pieces, as a streaming model would."""
    from kibitz.core.records import Utterance

    utt = Utterance(t=0.0, event_ids=[], trigger=trigger)
    for i in range(0, len(text), 5):
        voice.output.token(utt, text[i : i + 5])
    utt.text = text
    voice.output.done(utt)
    return utt


def open_voice(
    stream: Stream,
    on_question: Callable[[str], None],
    on_hearing: Callable[[Any], None] | None = None,
    confirm_barge_in: bool = False,
) -> Any:
    """The buddy persona's voice (Piper joe), played on the ClockPlayer into `stream`."""
    from kibitz.core.config import VoiceConfig
    from kibitz.core.persona import load_persona
    from kibitz.voice.live import Voice

    config = VoiceConfig(enabled=True, confirm_barge_in=confirm_barge_in)
    voice = Voice.open(config, load_persona("buddy"), on_question=on_question, on_hearing=on_hearing)
    stream.rate = voice.mixer.rate
    voice.start(microphone=False, speakers=False, sink=stream.sink)
    return voice


def _grew(items: list[Any], before: int) -> Callable[[], bool]:
    return lambda: len(items) > before


def _has(mapping: dict[int, float], key: int) -> Callable[[], bool]:
    return lambda: key in mapping


def _passed(wall: float) -> Callable[[], bool]:
    return lambda: time.perf_counter() >= wall


def _wait(condition: Callable[[], bool], stream: Stream, hear: Callable[[Any], None], limit_s: float) -> bool:
    """Feed silence (noise and echo) until `condition` holds or `limit_s` passed."""
    end = time.perf_counter() + limit_s
    while time.perf_counter() < end:
        if condition():
            return True
        stream.feed(hear)
    return condition()


# -- latency -------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Asked:
    """One spoken question of the latency part (None where a stage did not happen)."""

    text: str
    heard: str | None
    latency_s: float | None
    """End of the question (its last non-silent sample fed) → the first sounding block of the answer played."""
    asr_s: float | None
    handed_s: float | None
    """End of the question → the transcript handed on (VAD hangover or speculative ASR, then ASR)."""
    first_token_s: float | None
    """The question handed to the companion → its first visible token (the Utterance's figure)."""
    answer: str | None
    tts_rtf: float | None
    """The answer's synthesis seconds per second of audio."""
    extra_questions: int = 0
    """Other transcripts handed on meanwhile (the companion's own echo taken for the player)."""
    prompt_new: int | None = None
    """Prompt tokens the answer still had to evaluate when it started: when the question was handed, or when the
    recogniser guessed it (`guessed`); the rest was evaluated while the player asked it."""
    guessed: bool | None = None
    """The answer was written from the recogniser's guess at the question, before the question was confirmed."""
    guesses: list[str] = field(default_factory=list)
    """What became of each answer written to a guess while this question was asked ("said", "dropped: why")."""
    first_piece: str | None = None
    """The answer's first spoken piece (a first clause or sentence)."""
    piece_s: float | None = None
    """The first visible token → the first piece complete (queued for synthesis)."""
    synth_s: float | None = None
    """The first piece's synthesis (the first audio plays after it)."""
    guess_start_s: float | None = None
    """End of the question → the model started on the answer to the recogniser's guess (the one said)."""
    guess_token_s: float | None = None
    """End of the question → that answer's first visible piece written (held back until confirmed)."""
    hurried_s: float | None = None
    """Seconds the model ran on llm.answer_threads (a core taken from the game) while this question was asked and
    answered."""


@dataclass(slots=True)
class LatencyResult:
    model: str
    asked: list[Asked]
    p50: Figure
    p95: Figure
    answered: int
    memory: dict[str, float]
    """RSS and peak with the LLM, Whisper, the voice and the VAD loaded, right after the run (GB)."""
    game: dict[str, float]
    """How the game kept time while the questions were asked and answered (`game_pacing`)."""
    barge_ins: int
    """Barge-ins the answers' own echo set off (0 expected)."""
    errors: list[str]

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "p50": self.p50.to_json(),
            "p95": self.p95.to_json(),
            "answered": self.answered,
            "memory": self.memory,
            "game": self.game,
            "barge_ins": self.barge_ins,
            "extra_questions": sum(a.extra_questions for a in self.asked),
            "errors": self.errors,
            "asked": [asdict(a) for a in self.asked],
            "median_asr_s": _median([a.asr_s for a in self.asked]),
            "median_handed_s": _median([a.handed_s for a in self.asked]),
            "median_first_token_s": _median([a.first_token_s for a in self.asked]),
            "median_tts_rtf": _median([a.tts_rtf for a in self.asked]),
            "median_prompt_new": _median([None if a.prompt_new is None else float(a.prompt_new) for a in self.asked]),
            "guessed": sum(bool(a.guessed) for a in self.asked),
            "guesses": dict(Counter(o for a in self.asked for o in a.guesses)),
            "median_piece_s": _median([a.piece_s for a in self.asked]),
            "median_synth_s": _median([a.synth_s for a in self.asked]),
            "median_guess_start_s": _median([a.guess_start_s for a in self.asked]),
            "median_guess_token_s": _median([a.guess_token_s for a in self.asked]),
            "median_hurried_s": _median([a.hurried_s for a in self.asked]),
        }


def game_pacing(source: Any, start: float, end: float) -> dict[str, float]:
    """How late the emulator's frames came between `start` and `end` (perf_counter): the share more than one frame
    late (a frame the player would see stutter), the 95th percentile and the worst, in ms (frames on time count 0)."""
    pacer = source.pacer
    if pacer is None or end <= start:
        return {}
    frames = max(1, round((end - start) / pacer.period))
    late = sorted(s for t, s in list(pacer.late) if start <= t <= end)
    values = [0.0] * max(0, frames - len(late)) + late
    return {
        "frames": float(frames),
        "late_share": sum(s > pacer.period for s in late) / frames,
        "late_p95_ms": 1000 * percentile(values, 95),
        "late_max_ms": 1000 * (late[-1] if late else 0.0),
    }


def _first_piece(piece: list[float | str] | None, heard: Any, utt: Any) -> dict[str, Any]:
    """The first piece's text, and the time from the first token to it and its synthesis (Asked's fields)."""
    if piece is None or heard is None or utt.first_token_latency is None:
        return {}
    text, queued, *synthesised = piece
    first_token = heard.handed_at + utt.first_token_latency
    return {
        "first_piece": str(text),
        "piece_s": float(queued) - first_token,
        "synth_s": float(synthesised[0]) - float(queued) if synthesised else None,
    }


def _similar(a: str, b: str) -> float:
    import difflib

    return difflib.SequenceMatcher(None, _normalise(a), _normalise(b)).ratio()


def _median(values: list[float | None]) -> float | None:
    have = [v for v in values if v is not None]
    return percentile(have, 50) if have else None


def open_companion(model: str, voice: Any, max_tokens: int | None = None, llm: Overrides | None = None) -> Any:
    """A real Companion on `model` whose lines go to the voice (and which a barge-in cuts)."""
    from kibitz.brain.companion import Companion
    from kibitz.brain.llm import make_backend
    from kibitz.core.persona import load_persona

    config = _config(model, llm)
    companion = Companion(
        make_backend(config.llm),
        load_persona("buddy"),
        max_tokens=max_tokens or config.llm.max_tokens,
        temperature=config.llm.temperature,
        on_token=voice.output.token,
        on_done=voice.output.done,
        on_draft=voice.output.draft,
        on_error=voice.output.error,
    )
    voice.attach(companion)
    companion.start(warm=True)
    return companion


Overrides = dict[str, Any]
"""Configuration overrides for the companion's model ("llm.n_threads": 2, "llm.n_threads_batch": 2)."""


def _config(model: str, llm: Overrides | None) -> Any:
    from kibitz.core.config import load_config

    return load_config(None, {"llm.model": model, "game": GAME, **(llm or {})})


GAME = "smb"
"""The game played while the questions are asked: the one `kibitz watch` plays by default."""


class WatchSession:
    """`kibitz watch --game smb --voice` without the terminal: the real Session on the emulator in real time (the
    built-in player plays), its questions and what it hears coming from the voice, its lines spoken by it."""

    def __init__(
        self, model: str, voice: Any, inputs: tuple[Any, Any], max_tokens: int | None, llm: Overrides | None, seed: int
    ) -> None:
        """`inputs`: the queues the voice puts the questions and what it hears in."""
        import itertools

        from kibitz.core.config import SourceConfig
        from kibitz.games import get_game
        from kibitz.session import Session
        from kibitz.sources import make_source

        config = _config(model, llm)
        game = get_game(GAME)
        game.check_installed()
        self.companion = open_companion(model, voice, max_tokens, llm)
        self.session = Session(config, game, self.companion, voice.output, react=False)
        self.session.questions, self.session.hearing = inputs
        self.session.prefetch_questions = True  # as `kibitz watch --voice`
        self.source = make_source(SourceConfig(kind="emulator", realtime=True), game, seed)
        self._stop = threading.Event()
        frames = itertools.takewhile(lambda _: not self._stop.is_set(), self.source.frames())
        self.error: str | None = None

        def run() -> None:
            try:
                self.session.run(frames, drain_s=5.0)
            except Exception as exc:  # the bench reports it; the questions asked so far still count
                self.error = f"The session stopped: {type(exc).__name__}: {exc}"

        self.thread = threading.Thread(target=run, name="kibitz-bench-session", daemon=True)
        self.thread.start()

    def answers(self) -> list[Any]:
        """The lines said so far that answer a question."""
        return [u for u in list(self.session.utterances) if u.trigger == "question"]

    def asked(self, utt: Any) -> str | None:
        """The question a line answers."""
        ids = set(utt.event_ids)
        return next((e.data.get("text") for e in list(self.session.events) if e.id in ids), None)

    def close(self) -> None:
        self._stop.set()
        self.thread.join(30.0)
        self.companion.stop(timeout=10.0, cut=True)
        self.source.close()


def latency_part(
    model: str,
    questions: int,
    seed: int = 0,
    max_tokens: int | None = None,
    llm: Overrides | None = None,
    progress: Progress = _noop,
) -> LatencyResult:
    """Spoken questions (eSpeak NG, another voice than the companion's) into `kibitz watch --game smb --voice`'s
    session, in real time, while the built-in player plays (the emulator on the same two cores)."""
    import queue

    from kibitz.core.records import Hearing

    texts = sentences()["questions"]
    chosen = [texts[i % len(texts)] for i in range(questions)]
    stream = Stream(echo=True, seed=seed)
    asked_q: queue.Queue[str] = queue.Queue()
    hearing_q: queue.Queue[Hearing] = queue.Queue()
    voice = open_voice(stream, asked_q.put, hearing_q.put)
    errors: list[str] = []
    asked: list[Asked] = []
    live: WatchSession | None = None
    try:
        live = WatchSession(model, voice, (asked_q, hearing_q), max_tokens, llm, seed)
        hear = voice.ear.hear
        _wait(lambda: False, stream, hear, 1.0)  # the VAD and the echo canceller settle
        began = time.perf_counter()

        def quiet() -> bool:
            answered = len(live.answers()) >= len(voice.heard)
            return answered and asked_q.empty() and not live.companion.busy and not voice.output.speaking

        for qi, text in enumerate(chosen):
            samples = espeak(text)
            _, last = voiced_span(samples)
            heard_before, tts_before, answers_before = (
                len(voice.heard),
                len(voice.output.tts_seconds),
                len(live.answers()),
            )
            guesses_before = list(live.companion.guesses)
            hurried_before = live.companion.backend.hurried_s
            walls = stream.feed_audio(hear, samples)
            end = walls[min(last // BLOCK, len(walls) - 1)]
            _wait(_grew(voice.heard, heard_before), stream, hear, 6.0)
            _wait(quiet, stream, hear, 40.0)  # every answer (also to anything else heard) finished playing
            _wait(lambda: False, stream, hear, 0.6)  # a pause before the next question
            # The question's own transcript: the one heard since it began that reads most like it (the companion's
            # echo heard as a question is another entry, counted in `extra_questions`).
            mine = [i for i in range(heard_before, len(voice.heard)) if voice.heard[i].handed_at >= walls[0]]
            best = max(mine, key=lambda i: _similar(text, voice.heard[i].transcript.text), default=None)
            heard = voice.heard[best] if best is not None else None
            utt = None
            if heard is not None:
                utt = next((u for u in live.answers()[answers_before:] if live.asked(u) == heard.transcript.text), None)
            first = None
            if utt is not None and id(utt) in voice.output.first_audio:
                first = stream.first_sound(voice.output.first_audio[id(utt)] - 0.025)
            guesses = [g for g in list(live.companion.guesses) if all(g is not b for b in guesses_before)]
            said = next((g for g in guesses if g.outcome == "said"), None) if utt is not None and utt.guessed else None
            tts = voice.output.tts_seconds[tts_before:]
            tts_audio = sum(a for _, a in tts)
            asked.append(
                Asked(
                    text=text,
                    heard=heard.transcript.text if heard else None,
                    latency_s=(first - end) if first is not None else None,
                    asr_s=heard.transcript.asr_s if heard else None,
                    handed_s=(heard.handed_at - end) if heard else None,
                    first_token_s=utt.first_token_latency if utt else None,
                    answer=utt.text if utt else None,
                    tts_rtf=sum(s for s, _ in tts) / tts_audio if tts_audio else None,
                    extra_questions=len(voice.heard) - heard_before - (1 if heard else 0),
                    prompt_new=utt.prompt_new if utt else None,
                    guessed=utt.guessed if utt else None,
                    guesses=[g.outcome for g in guesses],
                    guess_start_s=None if said is None else said.started - end,
                    guess_token_s=None if said is None or said.first_token is None else said.first_token - end,
                    hurried_s=live.companion.backend.hurried_s - hurried_before,
                    **_first_piece(voice.output.first_piece.get(id(utt)) if utt else None, heard, utt),
                )
            )
            progress("latency", qi + 1, len(chosen))
        memory = memory_now()
        game = game_pacing(live.source, began, time.perf_counter())
        errors = voice.ear.errors + voice.output.errors + ([live.error] if live.error else [])
        barge_ins = len(voice.ear.barge_ins)
    finally:
        if live is not None:
            live.close()
        voice.close()
    values = [a.latency_s for a in asked if a.latency_s is not None]
    return LatencyResult(
        model=model,
        asked=asked,
        p50=quantile_figure(values, 50, TARGETS["latency_p50_s"]),
        p95=quantile_figure(values, 95, TARGETS["latency_p95_s"]),
        answered=len(values),
        memory=memory,
        game=game,
        barge_ins=barge_ins,
        errors=errors[:10],
    )


# -- barge-in ------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Trial:
    kind: str
    """bargein (the player talks over the line), echo (the line's echo only), game (loud game music only)."""
    player: str | None
    player_at_s: float | None
    """Seconds after the line's first audio the player started."""
    stop_s: float | None
    """The player's first non-silent sample fed → the last sounding block played (bargein)."""
    stopped: bool
    barge_ins: int
    """Sounds taken for the player starting to talk while the companion spoke (each paused or stopped it)."""
    cuts: int
    """Lines cut (words were heard, or `voice.confirm_barge_in` is off)."""
    resumed: int
    """Pauses that ended with no words heard: the line went on."""
    questions: list[str]
    cut_heard: str | None
    cut_is_prefix: bool


@dataclass(slots=True)
class BargeInResult:
    trials: list[Trial]
    stop_p50: Figure
    stop_p95: Figure
    stopped: Figure
    """Share of barge-in trials whose playback stopped (within 1 s) with the line cut."""
    cut_prefix: Figure
    """Share of barge-in trials with exactly one cut whose heard text is a prefix of the line."""
    echo_false_barge_ins: Figure
    """Echo-only trials with a barge-in (share)."""
    echo_false_questions: Figure
    game_false_questions: Figure
    game_false_barge_ins: Figure
    """Trials with game music in the microphone while the companion speaks (and its echo) that cut its line (share)."""
    game_pauses: Figure
    """Those trials where the music paused it a moment (no words heard: it went on) and nothing was cut (share)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "stop_p50": self.stop_p50.to_json(),
            "stop_p95": self.stop_p95.to_json(),
            "stopped": self.stopped.to_json(),
            "cut_prefix": self.cut_prefix.to_json(),
            "echo_false_barge_ins": self.echo_false_barge_ins.to_json(),
            "echo_false_questions": self.echo_false_questions.to_json(),
            "game_false_questions": self.game_false_questions.to_json(),
            "game_false_barge_ins": self.game_false_barge_ins.to_json(),
            "game_pauses": self.game_pauses.to_json(),
            "trials": [asdict(t) for t in self.trials],
        }


def bargein_part(
    trials: int,
    echo_trials: int,
    game_trials: int,
    seed: int = 0,
    progress: Progress = _noop,
    confirm_barge_in: bool = False,
) -> BargeInResult:
    """The companion's long line with its echo in the microphone; the player talks over it at a random moment.
    `confirm_barge_in`: as `voice.confirm_barge_in` (a sound pauses the line, words cut it)."""
    rng = random.Random(seed)
    said = sentences()["barge_in"]
    players = {text: espeak(text) for text in said}
    questions: list[str] = []
    stream = Stream(echo=True, seed=seed)
    voice = open_voice(stream, questions.append, confirm_barge_in=confirm_barge_in)
    out: list[Trial] = []
    total = trials + echo_trials + 2 * game_trials
    try:
        hear = voice.ear.hear
        _wait(lambda: False, stream, hear, 1.0)
        plan = ["bargein"] * trials + ["echo"] * echo_trials + ["game"] * game_trials + ["game+echo"] * game_trials
        for ti, kind in enumerate(plan):
            b0, c0, q0, r0 = len(voice.ear.barge_ins), len(voice.cuts), len(questions), len(voice.resumed)
            text: str | None = None
            at: float | None = None
            onset: float | None = None
            utt = None
            if kind == "game":
                tune = chiptune(6.0, seed + ti)
                stream.feed_audio(hear, tune)
                _wait(lambda: False, stream, hear, 2.0)
            else:
                utt = say(voice, LINE)
                _wait(_has(voice.output.first_audio, id(utt)), stream, hear, 20.0)
                first = voice.output.first_audio.get(id(utt), time.perf_counter())
                if kind == "game+echo":  # the game's music goes on while the companion talks
                    stream.feed_audio(hear, chiptune(6.0, seed + ti))
                    _wait(lambda: not voice.output.speaking, stream, hear, 30.0)
                elif kind == "bargein":
                    text = rng.choice(said)
                    at = rng.uniform(1.5, 4.0)
                    _wait(_passed(first + at), stream, hear, 10.0)
                    speech = players[text]
                    begin, _ = voiced_span(speech)
                    walls = stream.feed_audio(hear, speech)
                    onset = walls[min(begin // BLOCK, len(walls) - 1)]
                    _wait(_grew(questions, q0), stream, hear, 4.0)
                else:
                    _wait(lambda: not voice.output.speaking, stream, hear, 30.0)
                    _wait(lambda: False, stream, hear, 2.0)  # a late echo question would show now
            _wait(lambda: not voice.output.speaking, stream, hear, 30.0)
            _wait(lambda: False, stream, hear, 0.5)
            cuts = voice.cuts[c0:]
            stop_s = None
            stopped = False
            if onset is not None:
                last = stream.last_sound(before=time.perf_counter())
                stop_s = (last - onset) if last is not None else None
                stopped = bool(cuts) and stop_s is not None and 0.0 <= stop_s <= 1.0
            heard = cuts[0].heard if cuts else None
            out.append(
                Trial(
                    kind=kind,
                    player=text,
                    player_at_s=at,
                    stop_s=stop_s,
                    stopped=stopped,
                    barge_ins=len(voice.ear.barge_ins) - b0,
                    cuts=len(cuts),
                    resumed=len(voice.resumed) - r0,
                    questions=questions[q0:],
                    cut_heard=heard,
                    cut_is_prefix=len(cuts) == 1 and bool(heard) and LINE.startswith(heard or ""),
                )
            )
            progress("barge-in", ti + 1, total)
    finally:
        voice.close()
    barge = [t for t in out if t.kind == "bargein"]
    echo = [t for t in out if t.kind == "echo"]
    game = [t for t in out if t.kind == "game"]
    game_echo = [t for t in out if t.kind == "game+echo"]
    stops = [t.stop_s for t in barge if t.stop_s is not None]
    return BargeInResult(
        trials=out,
        stop_p50=quantile_figure(stops, 50),
        stop_p95=quantile_figure(stops, 95, TARGETS["stop_p95_s"]),
        stopped=proportion_figure(sum(t.stopped for t in barge), len(barge)),
        cut_prefix=proportion_figure(sum(t.cut_is_prefix for t in barge), len(barge)),
        echo_false_barge_ins=proportion_figure(sum(t.barge_ins > 0 or t.cuts > 0 for t in echo), len(echo)),
        echo_false_questions=proportion_figure(sum(bool(t.questions) for t in echo), len(echo)),
        game_false_questions=proportion_figure(sum(bool(t.questions) for t in game), len(game)),
        game_false_barge_ins=proportion_figure(sum(t.cuts > 0 for t in game_echo), len(game_echo)),
        game_pauses=proportion_figure(sum(t.resumed > 0 and t.cuts == 0 for t in game_echo), len(game_echo)),
    )


# -- memory --------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class RamResult:
    model: str
    rss: Figure
    peak: Figure
    """VmHWM: the process's peak so far (includes whatever earlier parts loaded)."""
    measured: str

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "rss": self.rss.to_json(), "peak": self.peak.to_json(), "measured": self.measured}


def ram_part(model: str, latency: LatencyResult | None = None, llm: Overrides | None = None) -> RamResult:
    """Resident memory with everything loaded: taken at the end of the latency run, else on a freshly opened stack
    (a voice, Whisper, the VAD and the companion's model, warmed with one prompt)."""
    if latency is not None and latency.memory:
        memory, measured = latency.memory, "after the latency run (LLM, Whisper, voice, VAD loaded and used)"
    else:
        stream = Stream(echo=False)
        voice = open_voice(stream, lambda text: None)
        try:
            companion = open_companion(model, voice, llm=llm)
            voice.output.engine.synthesize("Loading the voice.")
            memory = memory_now()
            companion.stop(timeout=10.0, cut=True)
        finally:
            voice.close()
        measured = "with the stack opened and warmed (no questions asked)"
    rss, peak = memory.get("rss_gb"), memory.get("peak_gb")
    target = TARGETS["ram_gb"]
    return RamResult(model, Figure(rss, rss, rss, 1, target, "GB"), Figure(peak, peak, peak, 1, target, "GB"), measured)


# -- the whole bench -----------------------------------------------------------------------------------------

PARTS = ("wer", "latency", "bargein", "rtf", "ram")


@dataclass(slots=True)
class Sizes:
    en: int = 102
    ko: int = 30
    ja: int = 30
    questions: int = 20
    trials: int = 20
    echo_trials: int = 10
    game_trials: int = 10
    tts_sentences: int = 8

    @classmethod
    def quick(cls) -> Sizes:
        return cls(en=10, ko=5, ja=5, questions=3, trials=3, echo_trials=2, game_trials=2, tts_sentences=3)


@dataclass(slots=True)
class VoiceBench:
    parts: list[str]
    model: str
    seed: int
    sizes: Sizes
    environment: dict[str, Any]
    llm: Overrides = field(default_factory=dict)
    """The model's settings changed from the defaults (threads)."""
    confirm_barge_in: bool = False
    """The barge-in part ran with voice.confirm_barge_in."""
    wer: list[WerSet] | None = None
    latency: LatencyResult | None = None
    bargein: BargeInResult | None = None
    rtf: RtfResult | None = None
    ram: RamResult | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "parts": self.parts,
            "confirm_barge_in": self.confirm_barge_in,
            "model": self.model,
            "seed": self.seed,
            "sizes": asdict(self.sizes),
            "environment": self.environment,
            "llm": self.llm,
            "seconds": self.seconds,
            "targets": TARGETS,
            "wer": [w.to_json() for w in self.wer] if self.wer is not None else None,
            "latency": self.latency.to_json() if self.latency else None,
            "bargein": self.bargein.to_json() if self.bargein else None,
            "rtf": self.rtf.to_json() if self.rtf else None,
            "ram": self.ram.to_json() if self.ram else None,
        }

    def rows(self) -> list[tuple[str, Figure]]:
        """(name, figure) of every headline figure, for the printed table."""
        rows: list[tuple[str, Figure]] = []
        for w in self.wer or []:
            if w.wer.value is not None:
                note = " (headline)" if w.name == "en-piper" else ""
                rows.append((f"WER {w.name}{note}", w.wer))
            if w.cer is not None:
                rows.append((f"CER {w.name}", w.cer))
        if self.latency:
            rows.append(("question end → first audio p50 (s)", self.latency.p50))
            rows.append(("question end → first audio p95 (s)", self.latency.p95))
        if self.bargein:
            b = self.bargein
            rows += [
                ("barge-in stop latency p50 (s)", b.stop_p50),
                ("barge-in stop latency p95 (s)", b.stop_p95),
                ("barge-in: playback stopped, line cut", b.stopped),
                ("barge-in: one cut, heard text a prefix", b.cut_prefix),
                ("echo only: false barge-ins", b.echo_false_barge_ins),
                ("echo only: false questions", b.echo_false_questions),
                ("game sound only: false questions", b.game_false_questions),
                ("game sound while it speaks: lines cut", b.game_false_barge_ins),
                ("game sound while it speaks: paused a moment, went on", b.game_pauses),
            ]
        if self.rtf:
            rows.append(("ASR real-time factor (1 thread)", self.rtf.asr))
            rows += [(f"TTS real-time factor {k} (1 thread)", v) for k, v in self.rtf.tts.items()]
        if self.ram:
            rows.append((f"RAM RSS (GB, {self.ram.model})", self.ram.rss))
            rows.append((f"RAM peak VmHWM (GB, {self.ram.model})", self.ram.peak))
        return rows


def environment() -> dict[str, Any]:
    import platform

    commit = None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = (
            subprocess.run(
                ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent
            ).stdout.strip()
            or None
        )
    return {
        "commit": commit,
        "cores": os.cpu_count(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "python": platform.python_version(),
        "when": datetime.now().isoformat(timespec="seconds"),
    }


def default_out() -> Path:
    from kibitz.models.store import cache_dir

    return cache_dir() / "bench" / f"voice-{datetime.now():%Y%m%d-%H%M%S}"


def run_voice_bench(
    parts: list[str],
    model: str,
    sizes: Sizes,
    seed: int = 0,
    out: Path | None = None,
    max_tokens: int | None = None,
    llm: Overrides | None = None,
    progress: Progress = _noop,
    confirm_barge_in: bool = False,
) -> tuple[VoiceBench, Path | None]:
    """Run the chosen parts (latency and RAM first, in a fresh process, so memory is the live stack's) and write
    `out`/results.json."""
    unknown = set(parts) - set(PARTS)
    if unknown:
        from kibitz.core.errors import ConfigError

        raise ConfigError(f"Unknown part(s) {', '.join(sorted(unknown))}; parts: {', '.join(PARTS)}.")
    bench = VoiceBench(list(parts), model, seed, sizes, environment(), dict(llm or {}), confirm_barge_in)

    def timed(name: str, fn: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        result = fn()
        bench.seconds[name] = round(time.perf_counter() - start, 1)
        return result

    if "latency" in parts:
        bench.latency = timed("latency", lambda: latency_part(model, sizes.questions, seed, max_tokens, llm, progress))
    if "ram" in parts:
        bench.ram = timed("ram", lambda: ram_part(model, bench.latency, llm))
    if "bargein" in parts:
        bench.bargein = timed(
            "bargein",
            lambda: bargein_part(sizes.trials, sizes.echo_trials, sizes.game_trials, seed, progress, confirm_barge_in),
        )
    if "wer" in parts:
        bench.wer = timed("wer", lambda: wer_part({"en": sizes.en, "ko": sizes.ko, "ja": sizes.ja}, seed, progress))
    if "rtf" in parts:
        bench.rtf = timed("rtf", lambda: rtf_part(sizes.en, sizes.tts_sentences, seed, bench.wer, progress))
    path = None
    if out is not None:
        import json

        out.mkdir(parents=True, exist_ok=True)
        path = out / "results.json"
        path.write_text(json.dumps(bench.to_json(), indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    return bench, path
