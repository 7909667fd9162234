"""The microphone as a stream of AudioChunk (PortAudio through sounddevice), resampled to 16 kHz mono; or a
recording played in its place, in real time (`FileMicrophone`: scripts, demos, and tests without a sound card)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
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


class FileMicrophone:
    """A recording heard as if through the microphone, in real time (then silence until closed)."""

    def __init__(self, path: str | Path, on_chunk: Callable[[AudioChunk], None], delay_s: float = 0.0) -> None:
        from kibitz.voice.audio import check, load

        self.samples = load(path)
        self.problems = check(self.samples).problems()
        self.on_chunk = on_chunk
        self.delay_s = delay_s
        self.overflows = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kibitz-file-mic", daemon=True)
        self.finished = threading.Event()
        """Set when the whole recording was heard."""

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        n = RATE * BLOCK_MS // 1000
        silence = np.zeros(n, np.float32)
        lead = int(self.delay_s * RATE)
        start = time.perf_counter()
        i = 0
        while not self._stop.is_set():
            pos = i * n - lead
            block = self.samples[pos : pos + n] if 0 <= pos < len(self.samples) else silence
            if len(block) < n:
                block = np.concatenate([block, silence[: n - len(block)]])
            if pos >= len(self.samples):
                self.finished.set()
            self.on_chunk(AudioChunk(block, i * n / RATE))
            i += 1
            self._stop.wait(max(0.0, start + i * n / RATE - time.perf_counter()))

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2.0)
