"""Acoustic echo cancellation: take the companion's own voice back out of the microphone.

When kibitz talks through speakers, the microphone hears it again, 20-150 ms later, quieter and smeared by the room.
Without cancellation the speech recogniser would take the companion's words for the player's (or the voice activity
detector would think the player interrupts). kibitz knows exactly what it played (the "reference"), so an adaptive
filter can learn the path speaker → room → microphone and subtract its estimate of the echo, leaving the player.

`SpeexEchoCanceller` does this with libspeexdsp (BSD; Debian's libspeexdsp1, bound with ctypes, no compiler needed):
its multidelay block frequency-domain adaptive filter, then optionally its preprocessor's residual echo suppression
for what the linear filter misses. `NoEchoCanceller` is for headphones, where there is no echo. Both work on mono
float32 blocks in [-1, 1], the voice pipeline's format, of any length.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import weakref
from abc import ABC, abstractmethod
from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt

from kibitz.core.registry import Registry
from kibitz.voice.audio import AudioError
from kibitz.voice.records import RATE

Audio = npt.NDArray[np.float32]

SPEEX_HINT = "Echo cancellation needs libspeexdsp (Debian/Ubuntu: apt install libspeexdsp1); or set voice echo to none."

# From speex/speex_echo.h and speex/speex_preprocess.h (speexdsp 1.2).
SPEEX_ECHO_SET_SAMPLING_RATE = 24
SPEEX_PREPROCESS_SET_DENOISE = 0
SPEEX_PREPROCESS_SET_NOISE_SUPPRESS = 18
SPEEX_PREPROCESS_SET_ECHO_STATE = 24

_Int16Pointer = ctypes.POINTER(ctypes.c_int16)


class EchoUnavailableError(AudioError):
    """The echo canceller asked for cannot run here: its library is missing."""


class AudioBlockError(AudioError, ValueError):
    """Blocks handed to an echo canceller that it cannot use: lengths that differ, not mono, NaN or infinity.

    A ValueError too, since it is a bad argument from the calling code, but an AudioError (a KibitzError) so that,
    if it reaches the CLI, the user sees the sentence rather than a traceback.
    """


class EchoCanceller(ABC):
    """Removes the echo of what kibitz played (the reference) from what the microphone heard.

    One instance per audio stream, fed from one thread: cancellers keep the state of the room between calls, so
    they are not thread-safe and must not be shared between streams.
    """

    name: str
    latency: int
    """Samples by which `process` delays its output: constant, so the stream stays continuous; a caller that stamps
    times on what it hears subtracts latency / rate seconds."""

    def __init__(self, rate: int = RATE) -> None:
        self.rate = rate

    @abstractmethod
    def process(self, mic: Audio, ref: Audio) -> Audio:
        """The microphone block with the reference's echo removed: as many samples as passed in, float32.

        mic and ref are equal-length mono blocks, time-aligned as captured and played (the reference sample played
        at the moment the microphone sample was recorded); any length, including 0. Raises `AudioBlockError` if the
        lengths differ, a block is not one-dimensional, or holds NaN or infinity.
        """

    def reset(self) -> None:  # noqa: B027 (a stateless canceller has nothing to forget)
        """Forget the room (a new output device, a seek in the stream) and any buffered audio."""

    def close(self) -> None:  # noqa: B027 (most cancellers hold nothing outside Python)
        """Free what the canceller holds outside Python; it cannot be used afterwards. Calling it twice is fine."""

    def __enter__(self) -> EchoCanceller:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _checked(mic: Any, ref: Any) -> tuple[Audio, Audio]:
    """mic and ref as float32 vectors, or an `AudioBlockError` saying what is wrong with them."""
    mic_a = np.asarray(mic, dtype=np.float32)
    ref_a = np.asarray(ref, dtype=np.float32)
    if mic_a.ndim != 1 or ref_a.ndim != 1:
        raise AudioBlockError(
            f"Echo cancellation takes mono blocks (1-D arrays); got shapes {mic_a.shape} and {ref_a.shape}."
        )
    if mic_a.shape != ref_a.shape:
        raise AudioBlockError(
            f"The microphone block ({mic_a.size} samples) and the reference block ({ref_a.size} samples) must be "
            "the same length."
        )
    if not (np.isfinite(mic_a).all() and np.isfinite(ref_a).all()):
        raise AudioBlockError("An audio block handed to echo cancellation holds NaN or infinite samples.")
    return mic_a, ref_a


class NoEchoCanceller(EchoCanceller):
    """Returns the microphone unchanged: for headphones, where the microphone never hears the companion."""

    name = "none"
    latency = 0

    def process(self, mic: Audio, ref: Audio) -> Audio:
        mic_a, _ = _checked(mic, ref)
        return mic_a.copy()


@cache
def _speexdsp() -> ctypes.CDLL:
    """libspeexdsp with the prototypes we call, loaded once per process."""
    candidates = ["libspeexdsp.so.1", ctypes.util.find_library("speexdsp")]
    lib = None
    for candidate in candidates:
        if not candidate:
            continue
        try:
            lib = ctypes.CDLL(candidate)
            break
        except OSError:
            continue
    if lib is None:
        raise EchoUnavailableError(SPEEX_HINT)
    p, i = ctypes.c_void_p, ctypes.c_int
    lib.speex_echo_state_init.argtypes, lib.speex_echo_state_init.restype = [i, i], p
    lib.speex_echo_state_destroy.argtypes, lib.speex_echo_state_destroy.restype = [p], None
    lib.speex_echo_ctl.argtypes, lib.speex_echo_ctl.restype = [p, i, p], i
    lib.speex_echo_cancellation.argtypes = [p, _Int16Pointer, _Int16Pointer, _Int16Pointer]
    lib.speex_echo_cancellation.restype = None
    lib.speex_preprocess_state_init.argtypes, lib.speex_preprocess_state_init.restype = [i, i], p
    lib.speex_preprocess_state_destroy.argtypes, lib.speex_preprocess_state_destroy.restype = [p], None
    lib.speex_preprocess_ctl.argtypes, lib.speex_preprocess_ctl.restype = [p, i, p], i
    lib.speex_preprocess_run.argtypes, lib.speex_preprocess_run.restype = [p, _Int16Pointer], i
    return lib


def _free_speex(lib: ctypes.CDLL, states: dict[str, int | None]) -> None:
    """Destroy the C states once (close(), garbage collection or interpreter exit, whichever comes first)."""
    echo, pre = states.pop("echo", None), states.pop("pre", None)
    if pre:
        lib.speex_preprocess_state_destroy(pre)
    if echo:
        lib.speex_echo_state_destroy(echo)


def _to_int16(x: Audio) -> npt.NDArray[np.int16]:
    return np.clip(np.rint(x * 32768.0), -32768, 32767).astype(np.int16)


class SpeexEchoCanceller(EchoCanceller):
    """libspeexdsp's echo canceller (an adaptive MDF filter) and, with suppress, its residual echo suppressor.

    Speex works on whole frames of frame_ms, so blocks are buffered: `process` returns as many samples as it was
    given, the stream delayed by exactly one frame (320 samples at 16 kHz and 20 ms) whatever the block sizes, so it
    stays continuous. The suppressor's overlap-add adds one more frame, so `latency` is two frames (40 ms) with
    suppress and one without.
    tail_ms is the longest echo the filter models: the speaker-to-microphone delay plus the room's reverberation;
    longer costs CPU and adapts more slowly. The filter needs a second or two of the companion talking to converge.

    The residual suppressor (suppress=True) removes what the linear filter leaves (loudspeaker distortion, a room
    that changed) by attenuating frequency bands where the echo estimate dominates. Speex's noise suppression, which
    shares that stage, is set to 0 dB: steady noise is left alone, for the speech recogniser to cope with. The filter
    itself removes DC and rumble below about 50 Hz (speex's input notch), which speech does not need.

    The C states are freed by `close()` or, failing that, when the object is collected or the interpreter exits
    (`weakref.finalize`, which unlike `__del__` also runs safely at shutdown), exactly once either way.
    """

    name = "speex"

    def __init__(self, rate: int = RATE, frame_ms: int = 20, tail_ms: int = 300, suppress: bool = True) -> None:
        super().__init__(rate)
        if rate <= 0 or frame_ms <= 0 or tail_ms < frame_ms:
            raise ValueError(f"Bad echo canceller settings: rate={rate}, frame_ms={frame_ms}, tail_ms={tail_ms}.")
        self._lib = _speexdsp()
        self.frame = rate * frame_ms // 1000
        self.tail = rate * tail_ms // 1000
        self.latency = self.frame * (2 if suppress else 1)
        self.suppress = suppress
        # Held in a dict the finalizer shares, so close() and garbage collection free each state exactly once.
        self._states: dict[str, int | None] = {}
        self._finalizer = weakref.finalize(self, _free_speex, self._lib, self._states)
        self._open()

    def _open(self) -> None:
        """Fresh speex states and empty buffers."""
        echo = self._lib.speex_echo_state_init(self.frame, self.tail)
        if not echo:
            raise EchoUnavailableError("libspeexdsp could not create an echo canceller (out of memory?).")
        self._states["echo"] = echo
        rate_c = ctypes.c_int(self.rate)
        self._lib.speex_echo_ctl(echo, SPEEX_ECHO_SET_SAMPLING_RATE, ctypes.byref(rate_c))
        if self.suppress:
            self._states["pre"] = self._new_suppressor(echo)
        self._mic_in = np.zeros(0, dtype=np.int16)
        self._ref_in = np.zeros(0, dtype=np.int16)
        self._out = np.zeros(self.frame, dtype=np.float32)  # the frame of buffering delay, primed with silence

    def _new_suppressor(self, echo: int) -> int:
        """A speex preprocessor that suppresses the residual echo that echo state estimates, and nothing else."""
        pre: int | None = self._lib.speex_preprocess_state_init(self.frame, self.rate)
        if not pre:
            raise EchoUnavailableError("libspeexdsp could not create its echo suppressor (out of memory?).")
        # Denoising must stay on: speex applies the echo suppression gains only when it is (preprocess.c); with
        # noise suppression at 0 dB, its gain floor is 1 where steady noise dominates, so only the echo is cut.
        on, no_noise_suppression = ctypes.c_int(1), ctypes.c_int(0)
        self._lib.speex_preprocess_ctl(pre, SPEEX_PREPROCESS_SET_DENOISE, ctypes.byref(on))
        self._lib.speex_preprocess_ctl(pre, SPEEX_PREPROCESS_SET_NOISE_SUPPRESS, ctypes.byref(no_noise_suppression))
        self._lib.speex_preprocess_ctl(pre, SPEEX_PREPROCESS_SET_ECHO_STATE, ctypes.c_void_p(echo))
        return pre

    def _state(self, key: str) -> int:
        state = self._states.get(key)
        if not state:
            raise RuntimeError("This echo canceller is closed.")
        return state

    def process(self, mic: Audio, ref: Audio) -> Audio:
        mic_a, ref_a = _checked(mic, ref)
        echo = self._state("echo")
        pre = self._states.get("pre")
        mic_in = np.concatenate([self._mic_in, _to_int16(mic_a)])
        ref_in = np.concatenate([self._ref_in, _to_int16(ref_a)])
        whole = mic_in.size // self.frame * self.frame
        cleaned = np.empty(whole, dtype=np.int16)
        for start in range(0, whole, self.frame):
            rec = np.ascontiguousarray(mic_in[start : start + self.frame])
            play = np.ascontiguousarray(ref_in[start : start + self.frame])
            out = cleaned[start : start + self.frame]
            self._lib.speex_echo_cancellation(
                echo,
                rec.ctypes.data_as(_Int16Pointer),
                play.ctypes.data_as(_Int16Pointer),
                out.ctypes.data_as(_Int16Pointer),
            )
            if pre:
                self._lib.speex_preprocess_run(pre, out.ctypes.data_as(_Int16Pointer))
        self._mic_in, self._ref_in = mic_in[whole:].copy(), ref_in[whole:].copy()
        out_all = np.concatenate([self._out, cleaned.astype(np.float32) / 32768.0])
        result, self._out = out_all[: mic_a.size], out_all[mic_a.size :]
        return result

    def reset(self) -> None:
        """Start again as if new. Fresh states rather than speex_echo_state_reset, which leaves some of the filter's
        memory (pre-emphasis, leak estimate) behind, and the preprocessor has no reset at all."""
        self._state("echo")
        _free_speex(self._lib, self._states)
        self._open()

    def close(self) -> None:
        self._finalizer()


ECHO_CANCELLERS: Registry[type[EchoCanceller]] = Registry("echo canceller")
ECHO_CANCELLERS.register("speex", SpeexEchoCanceller, "libspeexdsp's adaptive filter and residual echo suppressor")
ECHO_CANCELLERS.register("none", NoEchoCanceller, "no echo cancellation, for headphones")


def make_echo_canceller(name: str, rate: int = RATE) -> EchoCanceller:
    """The echo canceller called name ("speex", "none") for a stream at rate Hz, with its default settings."""
    return ECHO_CANCELLERS.get(name)(rate=rate)


def echo_return_loss_enhancement(mic: npt.ArrayLike, out: npt.ArrayLike) -> float:
    """ERLE in dB: how much quieter the canceller's output is than its input, over the whole arrays.

    10·log10(energy(mic) / energy(out)). Meaningful when the microphone holds only echo (and noise): then it is how
    much of the echo was removed. Silent output gives infinity; silent input with some output gives -infinity.
    """
    mic_e = float(np.sum(np.square(np.asarray(mic, dtype=np.float64))))
    out_e = float(np.sum(np.square(np.asarray(out, dtype=np.float64))))
    if out_e == 0.0:
        return math.inf if mic_e > 0.0 else 0.0
    if mic_e == 0.0:
        return -math.inf
    return 10.0 * math.log10(mic_e / out_e)
