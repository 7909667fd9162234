"""Voice activity detection: is the player talking, frame by frame, and where does each question start and end.

`SileroVad` runs Silero VAD v6 (the ONNX file faster-whisper ships, so nothing more is downloaded) on 32 ms frames
with its recurrent state carried from frame to frame; `EnergyVad` is a loudness gate for when that model cannot
load. `Segmenter` turns the per-frame probabilities into SpeechStarted (sure after `onset_ms` of speech: the
barge-in signal) and SpeechSegment records (a partial every `partial_every_s` while the player talks, a final one
after `hangover_ms` of silence), with `preroll_ms` of audio kept before the onset so the first word is whole.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass

import numpy as np

from kibitz.core.errors import ModelError
from kibitz.core.registry import Registry
from kibitz.voice.records import RATE, AudioChunk, SpeechSegment, SpeechStarted

FRAME = 512
"""Samples per VAD frame at 16 kHz (32 ms), what Silero VAD v5/v6 expects."""
CONTEXT = 64


class Vad(ABC):
    """Speech probability of consecutive FRAME-sample frames of one stream."""

    name: str

    @abstractmethod
    def __call__(self, frame: np.ndarray) -> float: ...

    def reset(self) -> None:  # noqa: B027 (a stateless detector has nothing to forget)
        """Forget the stream (a new one starts)."""


class SileroVad(Vad):
    name = "silero"

    def __init__(self) -> None:
        try:
            import onnxruntime as ort
            from faster_whisper.utils import get_assets_path
        except ImportError:
            raise ModelError(
                "Silero VAD comes with faster-whisper; install the voice extra: pip install 'kibitz[voice]'."
            ) from None
        path = os.path.join(get_assets_path(), "silero_vad_v6.onnx")
        if not os.path.isfile(path):
            raise ModelError(f"{path} is missing; reinstall faster-whisper==1.2.1.")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 4
        self.session = ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])
        self.reset()

    def reset(self) -> None:
        self.h = np.zeros((1, 1, 128), np.float32)
        self.c = np.zeros((1, 1, 128), np.float32)
        self.context = np.zeros(CONTEXT, np.float32)

    def __call__(self, frame: np.ndarray) -> float:
        x = np.concatenate([self.context, frame.astype(np.float32, copy=False)])[None, :]
        self.context = x[0, -CONTEXT:].copy()
        out, self.h, self.c = self.session.run(None, {"input": x, "h": self.h, "c": self.c})
        return float(np.asarray(out).reshape(-1)[0])


class EnergyVad(Vad):
    """Loud enough and not steady: a frame whose level is well above the tracked noise floor."""

    name = "energy"

    def __init__(self, margin_db: float = 12.0) -> None:
        self.margin_db = margin_db
        self.reset()

    def reset(self) -> None:
        self.floor_db = -60.0

    def __call__(self, frame: np.ndarray) -> float:
        level = 20 * np.log10(max(float(np.sqrt(np.mean(np.square(frame, dtype=np.float64)))), 1e-6))
        # The floor follows quiet frames fast and loud ones slowly (speech does not raise it much).
        rate = 0.2 if level < self.floor_db else 0.005
        self.floor_db += rate * (level - self.floor_db)
        return float(np.clip((level - self.floor_db - self.margin_db) / 6.0 + 0.5, 0.0, 1.0))


VADS: Registry[type[Vad]] = Registry("voice activity detector")
VADS.register("silero", SileroVad, "Silero VAD v6 (ONNX, bundled with faster-whisper)")
VADS.register("energy", EnergyVad, "a loudness gate over the noise floor (no model)")


@dataclass(frozen=True, slots=True)
class SegmenterSettings:
    threshold: float = 0.5
    onset_ms: int = 96
    """Speech this long (3 frames) makes a start."""
    barge_onset_ms: int = 64
    """While the companion speaks (the echo gate is up), speech this long (2 frames) makes a start: the barge-in
    signal, which must stop playback within 200 ms (the gate's higher threshold keeps its own echo out)."""
    hangover_ms: int = 480
    """Silence this long ends the question."""
    preroll_ms: int = 320
    partial_every_s: float = 1.0
    max_segment_s: float = 25.0
    min_speech_ms: int = 200
    """A final segment with less speech than this (a cough, a click) is dropped."""


class Segmenter:
    """Cuts a stream of 16 kHz audio into the player's utterances. Feed it chunks of any length, in order."""

    def __init__(self, vad: Vad, settings: SegmenterSettings | None = None) -> None:
        self.vad = vad
        self.s = settings or SegmenterSettings()
        self._pending = np.zeros(0, np.float32)
        self._t = 0.0
        """Stream seconds at the start of `_pending`."""
        self._pre: deque[np.ndarray] = deque(maxlen=max(1, self.s.preroll_ms * RATE // 1000 // FRAME))
        self._speech: list[np.ndarray] = []
        self._voiced_run = 0
        self._silent_run = 0
        self._voiced_total = 0
        self._talking = False
        self._start = 0.0
        self._last_voiced = 0.0
        self._last_partial = 0.0
        self.gate: float = 0.0
        """An extra threshold added while the companion is speaking (its echo must not start a question)."""

    @property
    def talking(self) -> bool:
        return self._talking

    def feed(self, chunk: AudioChunk, quiet: bool = False) -> list[SpeechStarted | SpeechSegment]:
        """`quiet`: this chunk cannot be the player starting to talk (the echo gate said so); its frames count as
        silence for starting speech, though they are kept as audio of speech already going on."""
        if chunk.rate != RATE:
            raise ValueError(f"The segmenter takes {RATE} Hz audio, got {chunk.rate} Hz.")
        if not len(self._pending):
            self._t = chunk.t
        self._pending = np.concatenate([self._pending, chunk.samples.astype(np.float32, copy=False)])
        out: list[SpeechStarted | SpeechSegment] = []
        while len(self._pending) >= FRAME:
            frame, self._pending = self._pending[:FRAME], self._pending[FRAME:]
            t = self._t
            self._t += FRAME / RATE
            out.extend(self._frame(frame, t, quiet))
        return out

    def _frame(self, frame: np.ndarray, t: float, quiet: bool = False) -> list[SpeechStarted | SpeechSegment]:
        prob = self.vad(frame)
        voiced = prob >= min(0.95, self.s.threshold + self.gate) and not (quiet and not self._talking)
        end = t + FRAME / RATE
        frame_ms = FRAME * 1000 / RATE
        out: list[SpeechStarted | SpeechSegment] = []
        if not self._talking:
            self._pre.append(frame)
            self._voiced_run = self._voiced_run + 1 if voiced else 0
            onset = self.s.barge_onset_ms if self.gate > 0 else self.s.onset_ms
            if self._voiced_run * frame_ms >= onset:
                self._talking = True
                self._start = end - self._voiced_run * FRAME / RATE
                self._speech = list(self._pre)
                self._pre.clear()
                self._silent_run = 0
                self._voiced_total = self._voiced_run
                self._last_voiced = end
                self._last_partial = end
                out.append(SpeechStarted(self._start, end))
            return out
        self._speech.append(frame)
        if voiced:
            self._silent_run = 0
            self._voiced_total += 1
            self._last_voiced = end
        else:
            self._silent_run += 1
        duration = len(self._speech) * FRAME / RATE
        if self._silent_run * frame_ms >= self.s.hangover_ms or duration >= self.s.max_segment_s:
            out.extend(self._close())
        elif voiced and end - self._last_partial >= self.s.partial_every_s:
            self._last_partial = end
            out.append(SpeechSegment(np.concatenate(self._speech), self._start, self._last_voiced, final=False))
        return out

    def _close(self) -> list[SpeechSegment]:
        self._talking = False
        self._voiced_run = 0
        speech, self._speech = self._speech, []
        # Keep a little of the silence after the last word, drop the rest of the hangover.
        keep = len(speech) - max(0, self._silent_run - 4)
        if self._voiced_total * FRAME * 1000 / RATE < self.s.min_speech_ms:
            return []
        return [SpeechSegment(np.concatenate(speech[:keep]), self._start, self._last_voiced, final=True)]

    def flush(self) -> list[SpeechSegment]:
        """End of the stream: a question still going on is final now."""
        return self._close() if self._talking else []

    @property
    def silent_for(self) -> float:
        """Seconds of silence since the last voiced frame of the current utterance (0 when not talking)."""
        return self._silent_run * FRAME / RATE if self._talking else 0.0

    def current(self) -> SpeechSegment | None:
        """The utterance so far, as if it ended now (for starting its recognition early)."""
        if not self._talking:
            return None
        keep = len(self._speech) - max(0, self._silent_run - 4)
        return SpeechSegment(np.concatenate(self._speech[:keep]), self._start, self._last_voiced, final=True)


def make_vad(name: str = "silero") -> Vad:
    return VADS.get(name)()
