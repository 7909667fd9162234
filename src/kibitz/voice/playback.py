"""Playing the companion's sentences in real time, and knowing exactly how much of each was heard.

A `Mixer` holds the queue of sentences and hands out the next block of samples when asked; it counts what it
handed out per sentence (so a barge-in can cut the line's record to what was played) and taps every block, at
16 kHz, for the echo canceller's reference. Something real-time pulls the blocks: `DevicePlayer` (a PortAudio
output stream, through sounddevice) or `ClockPlayer` (a thread that keeps real time with no sound device: for
tests, the bench, `--out` files, and a server that streams the audio to a browser instead).

`stop()` empties the queue at once: the next block handed out is silence, so playback stops within one block
(20 ms) plus the device's own output latency. `pause()` stops it as fast and keeps the queue (and the place in the
sentence) for `resume()`.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from kibitz.voice.audio import AudioError, resample
from kibitz.voice.records import RATE, SpokenSentence

log = logging.getLogger(__name__)
OUT_RATE = 48_000
TAP_SECONDS = 2
BLOCK_MS = 20


class Mixer:
    """The queue of sentences being played; thread-safe."""

    def __init__(self, rate: int = OUT_RATE) -> None:
        self.rate = rate
        self._lock = threading.Lock()
        self._queue: deque[tuple[SpokenSentence, np.ndarray]] = deque()
        self._pos = 0
        """Samples (at `rate`) of the head sentence handed out."""
        self._tap = np.zeros(TAP_SECONDS * RATE, np.float32)
        """The last TAP_SECONDS of what was played, at 16 kHz, newest last..."""
        self._tap_end: float | None = None
        """...and the perf_counter time its last sample was handed out."""
        self.on_start: Callable[[SpokenSentence], None] | None = None
        self.on_end: Callable[[SpokenSentence], None] | None = None
        self.played_total = 0
        self._paused = False
        import soxr

        self._tap_resampler = soxr.ResampleStream(rate, RATE, 1, dtype="float32")

    def enqueue(self, sentence: SpokenSentence) -> None:
        audio = resample(sentence.samples, sentence.rate, self.rate)
        with self._lock:
            self._queue.append((sentence, audio))

    def pause(self) -> None:
        """Play silence from the next block on, keeping what is queued where it is (`resume` goes on from there)."""
        with self._lock:
            self._paused = True

    def resume(self) -> None:
        with self._lock:
            self._paused = False

    @property
    def paused(self) -> bool:
        with self._lock:
            return self._paused

    @property
    def active(self) -> bool:
        """Something is queued or playing."""
        with self._lock:
            return bool(self._queue)

    def pull(self, frames: int) -> np.ndarray:
        """The next `frames` samples to play (silence when nothing is queued)."""
        out = np.zeros(frames, np.float32)
        started: list[SpokenSentence] = []
        ended: list[SpokenSentence] = []
        with self._lock:
            filled = 0
            while filled < frames and self._queue and not self._paused:
                sentence, audio = self._queue[0]
                if self._pos == 0:
                    started.append(sentence)
                take = min(frames - filled, len(audio) - self._pos)
                out[filled : filled + take] = audio[self._pos : self._pos + take]
                filled += take
                self._pos += take
                sentence.played = min(len(sentence.samples), round(self._pos * sentence.rate / self.rate))
                if self._pos >= len(audio):
                    sentence.played = len(sentence.samples)
                    self._queue.popleft()
                    self._pos = 0
                    ended.append(sentence)
            self.played_total += frames
            tap = np.asarray(self._tap_resampler.resample_chunk(out), dtype=np.float32).reshape(-1)
            if len(tap):
                self._tap = np.concatenate([self._tap[len(tap) :], tap])
            self._tap_end = time.perf_counter()
        for s in started:
            if self.on_start:
                self.on_start(s)
        for s in ended:
            if self.on_end:
                self.on_end(s)
        return out

    def stop(self) -> list[SpokenSentence]:
        """Drop everything queued; returns the sentences that were cut or never started (played counts final)."""
        with self._lock:
            cut = [s for s, _ in self._queue]
            self._queue.clear()
            self._pos = 0
            self._paused = False
        return cut

    def reference(self, frames: int, until: float | None = None) -> np.ndarray:
        """What was played (16 kHz) in the `frames` samples up to the perf_counter time `until` (default: now), for
        the echo canceller: the microphone block recorded over the same time hears its echo. Zeros for any part of
        that time nothing was played or that is older than the tap keeps."""
        out = np.zeros(frames, np.float32)
        with self._lock:
            if self._tap_end is None:
                return out
            back = 0 if until is None else round((self._tap_end - until) * RATE)
            end = len(self._tap) - max(back, 0)
            start = end - frames
            if end <= 0:
                return out
            piece = self._tap[max(start, 0) : end]
            out[frames - len(piece) :] = piece
        return out


class Player(ABC):
    def __init__(self, mixer: Mixer) -> None:
        self.mixer = mixer

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def close(self) -> None: ...


class ClockPlayer(Player):
    """Plays in real time with no sound device; `sink` receives every block (e.g. to write a file or send it)."""

    def __init__(self, mixer: Mixer, sink: Callable[[np.ndarray], None] | None = None, speed: float = 1.0) -> None:
        super().__init__(mixer)
        self.sink = sink
        self.speed = speed
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kibitz-playback", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        block = self.mixer.rate * BLOCK_MS // 1000
        step = BLOCK_MS / 1000 / self.speed
        deadline = time.perf_counter()
        while not self._stop.is_set():
            samples = self.mixer.pull(block)
            if self.sink is not None:
                try:
                    self.sink(samples)
                except Exception as exc:  # a failing listener loses its audio, never the playback clock
                    log.warning("The audio sink failed: %s", exc)
            deadline += step
            delay = deadline - time.perf_counter()
            if delay > 0:
                self._stop.wait(delay)
            elif delay < -1.0:
                deadline = time.perf_counter()  # fell far behind (a suspended machine): do not rush to catch up

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2.0)


class DevicePlayer(Player):
    """The default sound output (PortAudio through sounddevice)."""

    def __init__(self, mixer: Mixer, device: str | int | None = None) -> None:
        super().__init__(mixer)
        sd = sound_device()
        try:
            self.stream = sd.OutputStream(
                samplerate=mixer.rate,
                channels=1,
                dtype="float32",
                blocksize=mixer.rate * BLOCK_MS // 1000,
                latency="low",
                device=device,
                callback=self._callback,
            )
        except Exception as exc:
            raise AudioError(
                f"Cannot open the sound output ({exc}); check `kibitz voice devices`, or use --out FILE.wav."
            ) from None

    def _callback(self, outdata: np.ndarray, frames: int, _time: object, _status: object) -> None:
        outdata[:, 0] = self.mixer.pull(frames)

    def start(self) -> None:
        self.stream.start()

    def close(self) -> None:
        self.stream.stop()
        self.stream.close()


def sound_device() -> Any:
    """The sounddevice module, or one sentence on why there is no sound here."""
    try:
        import sounddevice as sd
    except OSError:
        raise AudioError(
            "No sound system here (PortAudio is missing: apt install libportaudio2); voice needs a microphone "
            "and speakers, or use `kibitz voice say --out FILE.wav` and `kibitz voice transcribe FILE`."
        ) from None
    except ImportError:
        raise AudioError("Voice needs sounddevice; install the voice extra: pip install 'kibitz[voice]'.") from None
    try:
        devices = sd.query_devices()
    except Exception:
        devices = []
    if not len(devices):
        raise AudioError(
            "No audio device was found (a headless machine?); plug in a microphone and speakers, or use "
            "`kibitz voice say --out FILE.wav` and `kibitz voice transcribe FILE`."
        )
    return sd
