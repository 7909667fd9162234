"""Reading, checking, converting and writing audio: every way sound enters or leaves kibitz goes through here.

Files are read with libsndfile (WAV, FLAC, OGG; soundfile) or, for anything else, FFmpeg's decoders (PyAV), mixed
to mono and resampled to the rate asked for (soxr). Problems come back as one sentence (`AudioError`); a few that
are not fatal (clipping, silence) are reported by `check` so a caller can say them.
"""

from __future__ import annotations

import io
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kibitz.core.errors import KibitzError
from kibitz.voice.records import RATE

MAX_FILE_SECONDS = 3600.0
"""Longer files are refused (an hour of 16 kHz float audio is 230 MB)."""


class AudioError(KibitzError):
    """Audio that cannot be used: a missing or corrupt file, no device, a wrong format."""


def to_mono(samples: np.ndarray) -> np.ndarray:
    """Average the channels of a (frames, channels) array; a 1-D array is already mono."""
    if samples.ndim == 1:
        return samples.astype(np.float32, copy=False)
    if samples.ndim != 2 or samples.shape[1] == 0:
        raise AudioError(f"Audio has shape {samples.shape}; expected samples × channels.")
    return samples.mean(axis=1, dtype=np.float32)


def resample(samples: np.ndarray, rate: int, to: int = RATE) -> np.ndarray:
    """The same sound at another sample rate (soxr, high quality)."""
    if rate <= 0:
        raise AudioError(f"A sample rate of {rate} Hz is not a sample rate.")
    samples = samples.astype(np.float32, copy=False)
    if rate == to or not len(samples):
        return samples
    import soxr

    return np.asarray(soxr.resample(samples, rate, to), dtype=np.float32)


def load(path: str | Path, rate: int = RATE) -> np.ndarray:
    """A sound file as mono float32 samples at `rate`; AudioError says what is wrong with a bad file."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise AudioError(f"No audio file at {path}.")
    try:
        import soundfile

        with soundfile.SoundFile(str(path)) as fh:
            if fh.frames / max(fh.samplerate, 1) > MAX_FILE_SECONDS:
                raise AudioError(f"{path} is longer than an hour; cut it into shorter files.")
            data = fh.read(dtype="float32", always_2d=True)
            source_rate = fh.samplerate
    except AudioError:
        raise
    except Exception:  # not something libsndfile reads: let FFmpeg try (mp3, m4a, webm...)
        data, source_rate = _load_with_av(path)
    if not len(data):
        raise AudioError(f"{path} holds no audio samples.")
    mono = to_mono(data)
    if not np.isfinite(mono).all():
        raise AudioError(f"{path} holds samples that are not numbers (corrupt file).")
    return resample(mono, source_rate, rate)


def _load_with_av(path: Path) -> tuple[np.ndarray, int]:
    try:
        import av
    except ImportError:
        raise AudioError(f"{path} is not a WAV/FLAC/OGG file and PyAV is not installed to decode it.") from None
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise AudioError(f"{path} has no audio stream.")
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="flt", layout="mono", rate=stream.rate or RATE)
            pieces: list[np.ndarray] = []
            total = 0.0
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunk = out.to_ndarray().reshape(-1)
                    pieces.append(chunk)
                    total += len(chunk) / out.sample_rate
                if total > MAX_FILE_SECONDS:
                    raise AudioError(f"{path} is longer than an hour; cut it into shorter files.")
            rate = stream.rate or RATE
    except AudioError:
        raise
    except Exception as exc:
        raise AudioError(
            f"{path} is not an audio file kibitz can read ({type(exc).__name__}): corrupt or unknown format."
        ) from None
    if not pieces:
        raise AudioError(f"{path} holds no audio samples.")
    return np.concatenate(pieces).astype(np.float32)[:, None], rate


def decode_wav_bytes(data: bytes) -> tuple[np.ndarray, int]:
    """A WAV (or any libsndfile format) held in memory, as mono float32 and its rate."""
    import soundfile

    try:
        samples, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception as exc:
        raise AudioError(f"The audio data is not a readable sound file ({exc}).") from None
    return to_mono(samples), int(rate)


def wav_bytes(samples: np.ndarray, rate: int) -> bytes:
    """16-bit PCM WAV file contents."""
    import soundfile

    buf = io.BytesIO()
    soundfile.write(buf, np.clip(samples, -1.0, 1.0), rate, subtype="PCM_16", format="WAV")
    return buf.getvalue()


def save(path: str | Path, samples: np.ndarray, rate: int) -> Path:
    """Write a 16-bit WAV atomically (a killed process leaves the old file or none, never half a file)."""
    path = Path(path).expanduser()
    if path.parent and not path.parent.exists():
        raise AudioError(f"Cannot write {path}: the folder {path.parent} does not exist.")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(wav_bytes(samples, rate))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def pcm16_to_float(data: bytes) -> np.ndarray:
    """Little-endian 16-bit PCM bytes (what a browser or a sound card sends) as float32 samples."""
    if len(data) % 2:
        raise AudioError("16-bit PCM audio must have an even number of bytes.")
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


def float_to_pcm16(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


@dataclass(frozen=True, slots=True)
class Check:
    """What is notable about a stretch of audio (none of it fatal)."""

    seconds: float
    peak: float
    rms_db: float
    clipped: float
    """Share of samples at full scale."""

    @property
    def silent(self) -> bool:
        return self.rms_db < -60.0

    def problems(self) -> list[str]:
        """Sentences worth telling the player, if any."""
        out = []
        if self.silent:
            out.append("The audio is silent (is the microphone muted or the wrong device?).")
        if self.clipped > 0.001:
            out.append(f"{self.clipped:.1%} of the audio is clipped (too loud); lower the microphone's input gain.")
        return out


def check(samples: np.ndarray, rate: int = RATE) -> Check:
    if not len(samples):
        return Check(0.0, 0.0, -120.0, 0.0)
    peak = float(np.max(np.abs(samples)))
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    clipped = float(np.mean(np.abs(samples) >= 0.999))
    return Check(len(samples) / rate, peak, 20 * np.log10(max(rms, 1e-6)), clipped)
