"""The microphone as a stream of AudioChunk (PortAudio through sounddevice), resampled to 16 kHz mono."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from kibitz.voice.audio import AudioError, to_mono
from kibitz.voice.playback import sound_device
from kibitz.voice.records import RATE, AudioChunk

BLOCK_MS = 20


class Microphone:
    """Calls `on_chunk` from PortAudio's thread with every 20 ms of input; `overflows` counts lost blocks."""

    def __init__(self, on_chunk: Callable[[AudioChunk], None], device: str | int | None = None) -> None:
        sd: Any = sound_device()
        try:
            info = sd.query_devices(device, "input")
        except Exception:
            raise AudioError(
                f"No microphone {'named ' + repr(device) if device is not None else ''} was found; "
                "see `kibitz voice devices`, or type your questions instead."
            ) from None
        self.rate = int(info["default_samplerate"]) or RATE
        self.on_chunk = on_chunk
        self.overflows = 0
        self._t = 0.0
        import soxr

        self._resampler = soxr.ResampleStream(self.rate, RATE, 1, dtype="float32")
        try:
            self.stream = sd.InputStream(
                samplerate=self.rate,
                channels=1,
                dtype="float32",
                blocksize=self.rate * BLOCK_MS // 1000,
                latency="low",
                device=device,
                callback=self._callback,
            )
        except Exception as exc:
            raise AudioError(f"Cannot open the microphone ({exc}); see `kibitz voice devices`.") from None
        self.started_at = 0.0

    def _callback(self, indata: np.ndarray, frames: int, _time: object, status: Any) -> None:
        if status and status.input_overflow:
            self.overflows += 1
        samples = np.asarray(self._resampler.resample_chunk(to_mono(indata.copy())), dtype=np.float32).reshape(-1)
        chunk = AudioChunk(samples, self._t)
        self._t += len(samples) / RATE
        self.on_chunk(chunk)

    def start(self) -> None:
        self.started_at = time.perf_counter()
        self.stream.start()

    def close(self) -> None:
        self.stream.stop()
        self.stream.close()
