"""The companion's ears: microphone audio in, the player's questions out.

Per block of microphone audio (any thread hands it to `hear`; one worker does the rest, in order):
1. echo cancellation against what the companion itself played while the block was recorded (the Mixer's tap), so
   its own voice coming back from the speakers is not the player talking; while it speaks (and 400 ms after), an
   echo gate lets speech start only in a block that is louder than the echo left and is no copy of what was
   played, and the VAD asks for more certainty;
2. voice activity detection and segmentation (kibitz.voice.vad);
3. the start of speech while the companion talks is a barge-in: `on_barge_in` runs at once (playback stops, or
   pauses until words are heard: kibitz.voice.live), and its first half second and second are recognised at once
   (`on_words`), so whether it is words is known within a second;
4. recognition (Whisper) runs on another thread, so hearing never waits for it: partial transcripts every second
   while the player talks, the final one when they stop. Recognition of the final segment starts speculatively
   after a short silence and is kept if the player did not go on. `on_hearing` learns each step before the
   question is final (they started talking, the words so far, the guess at the whole question), so the companion
   evaluates the answer's prompt while they talk;
5. a final transcript that is empty, Whisper's noise, or the companion's own recent words is dropped; anything
   else goes to `on_question`.

Push-to-talk: with `push_to_talk`, audio counts only while `talk(True)` holds (a key or a button), and letting go
ends the question at once (no hangover wait) — for games whose own sound would otherwise be heard.
"""

from __future__ import annotations

import difflib
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from kibitz.core.records import Hearing
from kibitz.core.text import bare
from kibitz.voice.asr import Transcriber, is_hallucination
from kibitz.voice.echo import EchoCanceller
from kibitz.voice.playback import Mixer
from kibitz.voice.records import RATE, AudioChunk, SpeechSegment, SpeechStarted, Transcript
from kibitz.voice.vad import Segmenter

log = logging.getLogger(__name__)

ECHO_GAIN_START = 0.25
"""The echo left after cancellation assumed before it is learnt, as a share of the playing level's power (−6 dB)."""
ECHO_FLOOR = 0.05
"""The least echo expected, as a share of the playing level's power (−13 dB): to start talking over the companion,
the player must be at least a tenth as loud as its playback (−10 dB) once the echo is cancelled."""
ECHO_LAG = 4800
"""Samples (300 ms) the room and the sound system may delay the companion's voice before the microphone hears it."""
CORRELATION_WINDOW = 1600
"""Samples (100 ms) of what was heard compared with what was played."""
ECHO_CORRELATION = 0.6
"""Heard audio correlated this much with what was played is the companion's echo (a player talking over it as loud
as the echo brings it to about 0.7 (1/√2) and lower; louder, lower still)."""
ECHO_MEMORY_BLOCKS = 20
"""Blocks of playback (of 20 ms) whose loudest one sets the echo to expect: 400 ms of room and delay."""
EARLY_LOOKS_S = (0.5, 1.0)
"""Speech that starts while the companion talks is recognised this far in (partial transcripts), to tell words from
game sound soon."""
SPECULATE_AFTER_S = 0.06
"""Start recognising a question this long into the silence after it (the hangover ends it later)."""
ECHO_GATE = 0.3
"""Added to the VAD threshold while the companion is speaking."""
ECHO_MARGIN = 2.0
"""While the companion speaks, what is left after echo cancellation must be this many times louder than the echo
expected from what is playing (the learnt echo gain × the playing level) to be the player starting to talk."""
SELF_SIMILARITY = 0.75
"""A transcript this similar to something the companion said in the last `SELF_WINDOW_S` is its own echo."""
SELF_WINDOW_S = 20.0


@dataclass(slots=True)
class Heard:
    """Timings of one question, for the bench and the logs (perf_counter seconds, stream seconds)."""

    transcript: Transcript
    end_wall: float
    """perf_counter when the last voiced frame was heard (estimated from the stream clock)."""
    handed_at: float
    """perf_counter when the question was handed on."""


class Ear:
    def __init__(
        self,
        segmenter: Segmenter,
        transcriber: Transcriber,
        on_question: Callable[[Heard], None],
        echo: EchoCanceller | None = None,
        mixer: Mixer | None = None,
        speaking: Callable[[], bool] = lambda: False,
        on_barge_in: Callable[[SpeechStarted], None] | None = None,
        on_partial: Callable[[Transcript], None] | None = None,
        recent_lines: Callable[[], list[str]] = list,
        push_to_talk: bool = False,
        on_hearing: Callable[[Hearing], None] | None = None,
        on_words: Callable[[str], None] | None = None,
    ) -> None:
        """`on_hearing` (called on the ears' threads) learns what the player is saying before their question is
        final: that they started talking, the words so far (every partial transcript), then the recogniser's guess
        at the whole question a moment into their silence, so the companion can start on its prompt. `on_words`
        learns of any words recognised (a barge-in is the player talking, not a sound)."""
        self.segmenter = segmenter
        self.transcriber = transcriber
        self.on_question = on_question
        self.echo = echo
        self.mixer = mixer
        self.speaking = speaking
        self.on_barge_in = on_barge_in
        self.on_partial = on_partial
        self.recent_lines = recent_lines
        self.push_to_talk = push_to_talk
        self.on_hearing = on_hearing
        self.on_words = on_words
        self._talk = not push_to_talk
        self._released = False
        self._audio: queue.Queue[AudioChunk | None] = queue.Queue()
        self._asr: queue.Queue[tuple[SpeechSegment, float] | None] = queue.Queue()
        self._early_looks: list[float] = []
        """Speech started while the companion talked: recognise it once this much of it is heard (EARLY_LOOKS_S)."""
        self._speculative: tuple[float, float] | None = None
        """(segment end, segment start) of the final recognition started early."""
        self._early: dict[tuple[float, float], Transcript] = {}
        self.echo_gain = ECHO_GAIN_START
        """What is left after echo cancellation, as a share of the playing level's power, while only the companion
        speaks: learnt within a second or two of its speech (and lower as the canceller converges)."""
        self._played_levels: deque[float] = deque(maxlen=ECHO_MEMORY_BLOCKS)
        self._echoing = False
        self._heard_recent = np.zeros(0, np.float32)
        self._wall_offset: float | None = None
        """perf_counter − stream seconds, from the first block (a live stream keeps real time)."""
        self.barge_ins: list[tuple[SpeechStarted, float]] = []
        self.dropped: deque[tuple[str, str]] = deque(maxlen=50)
        """(transcript, why) of what was heard but not taken as a question."""
        self.errors: list[str] = []
        self._threads = [
            threading.Thread(target=self._hear_loop, name="kibitz-ear", daemon=True),
            threading.Thread(target=self._asr_loop, name="kibitz-asr", daemon=True),
        ]
        for t in self._threads:
            t.start()

    # -- input ----------------------------------------------------------------------------------------------
    def hear(self, chunk: AudioChunk) -> None:
        """A block of microphone audio (16 kHz mono), from any thread, as it arrives; never blocks."""
        if chunk.wall is None:
            chunk.wall = time.perf_counter()
        self._audio.put(chunk)

    def talk(self, pressed: bool) -> None:
        """Push-to-talk: the key or button went down (True) or up (False)."""
        if self.push_to_talk:
            if self._talk and not pressed:
                self._released = True
            self._talk = pressed

    def close(self, wait: bool = True) -> None:
        """Stop hearing; with `wait`, the questions already heard are recognised and handed on first."""
        self._audio.put(None)
        self._threads[0].join(30.0 if wait else 1.0)
        self._asr.put(None)
        self._threads[1].join(30.0 if wait else 1.0)

    # -- the hearing thread ---------------------------------------------------------------------------------
    def _hear_loop(self) -> None:
        while (chunk := self._audio.get()) is not None:
            try:
                self._process(chunk)
            except Exception as exc:  # one block lost, never the ears
                self.errors.append(f"{type(exc).__name__}: {exc}")
                log.warning("Could not process microphone audio: %s", exc)
        for segment in self.segmenter.flush():
            self._asr.put((segment, time.perf_counter()))

    def _process(self, chunk: AudioChunk) -> None:
        if self._wall_offset is None:
            self._wall_offset = time.perf_counter() - chunk.t
        samples = chunk.samples
        speaking = self.speaking()
        quiet = False
        if self.mixer is not None:
            # The echo in this block comes from what played while it was recorded (the wall clock of its end).
            history = self.mixer.reference(len(samples) + ECHO_LAG, until=chunk.wall)
            reference = history[-len(samples) :] if len(samples) else history[:0]
            heard = samples
            if self.echo is not None:
                samples = self.echo.process(samples, reference)
            quiet = self._echo_only(heard, samples, history)
        if not self._talk:
            samples = np.zeros_like(samples)
        # While it speaks and while its last words may still echo, the VAD asks for more certainty.
        self.segmenter.gate = ECHO_GATE if speaking or self._echoing else 0.0
        for item in self.segmenter.feed(AudioChunk(samples, chunk.t, chunk.rate), quiet=quiet):
            if isinstance(item, SpeechStarted):
                if self.on_hearing is not None:
                    self.on_hearing(Hearing(""))  # a question may be coming
                if self.speaking():
                    self.barge_ins.append((item, time.perf_counter()))
                    if self.on_words is not None:  # someone waits to know whether it is words
                        self._early_looks = list(EARLY_LOOKS_S)
                    if self.on_barge_in is not None:
                        self.on_barge_in(item)
            elif item.final or self.on_partial is not None or self.on_hearing is not None:
                self._asr.put((item, time.perf_counter()))
        if self._early_looks:
            current = self.segmenter.current()
            if current is None:
                self._early_looks = []  # it ended first: its final transcript tells
            elif current.end - current.start >= self._early_looks[0]:
                self._early_looks.pop(0)
                self._asr.put((replace(current, final=False), time.perf_counter()))
        if self._released:  # push-to-talk let go: the question ends now
            self._released = False
            for segment in self.segmenter.flush():
                self._asr.put((segment, time.perf_counter()))
        elif self.segmenter.silent_for >= SPECULATE_AFTER_S:
            current = self.segmenter.current()
            if current is not None and self._speculative != (current.end, current.start):
                self._speculative = (current.end, current.start)
                self._asr.put((current, -1.0))

    def _echo_only(self, heard: np.ndarray, residual: np.ndarray, history: np.ndarray) -> bool:
        """Whether this block is explained by the companion's own playback (no player speech in it): what the
        microphone heard lately follows what was played a moment before it (correlated, at some delay up to
        ECHO_LAG), or what is left after echo cancellation is no louder than the echo left so far."""
        reference = history[-len(heard) :] if len(heard) else history[:0]
        # The echo heard now comes from what played up to a few hundred ms ago (the room, the canceller's delay).
        self._played_levels.append(float(np.mean(np.square(reference, dtype=np.float64))) if len(reference) else 0.0)
        played = max(self._played_levels)
        self._heard_recent = np.concatenate([self._heard_recent, heard])[-CORRELATION_WINDOW:]
        self._echoing = played >= 1e-6
        if not self._echoing:
            return False
        left = float(np.mean(np.square(residual, dtype=np.float64))) / played
        # A floor: a canceller that converged well can still burst.
        explained = left <= ECHO_MARGIN * max(self.echo_gain, ECHO_FLOOR) or self._follows(history) >= ECHO_CORRELATION
        if self._played_levels[-1] >= 0.3 * played:  # learnt while it is playing now, not in the silence after
            self.echo_gain += (0.05 if left < self.echo_gain else 0.005) * (left - self.echo_gain)
        return explained

    def _follows(self, history: np.ndarray) -> float:
        """The highest normalised correlation between the last CORRELATION_WINDOW samples heard and what was played
        up to ECHO_LAG samples before them (0: unrelated, 1: an exact, delayed copy)."""
        m = self._heard_recent
        n = len(m)
        if n < CORRELATION_WINDOW or len(history) < n:
            return 0.0
        r = history[-(n + ECHO_LAG) :] if len(history) >= n + ECHO_LAG else history
        size = 1 << int(np.ceil(np.log2(len(r) + n)))
        corr = np.fft.irfft(np.fft.rfft(r, size) * np.conj(np.fft.rfft(m, size)), size)[: len(r) - n + 1]
        energy = np.concatenate([[0.0], np.cumsum(np.square(r, dtype=np.float64))])
        windows = energy[n:] - energy[:-n]
        norm = np.sqrt(np.maximum(windows, 1e-12) * max(float(np.dot(m, m)), 1e-12))
        return float(np.max(np.abs(corr) / norm))

    # -- the recognition thread -----------------------------------------------------------------------------
    def _asr_loop(self) -> None:
        while (job := self._asr.get()) is not None:
            segment, _queued = job
            try:
                self._recognise(segment, speculative=_queued < 0)
            except Exception as exc:
                message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
                self.errors.append(message)
                log.warning("Speech recognition failed on one segment: %s", message)

    def _recognise(self, segment: SpeechSegment, speculative: bool) -> None:
        key = (segment.end, segment.start)
        if speculative:
            waiting = list(self._asr.queue)
            if any(job is not None and job[0].start == segment.start and job[0].end != segment.end for job in waiting):
                return  # the player went on: a later look at this speech is already waiting, this one is stale
            self._early[key] = early = self.transcriber.transcribe(segment)
            self._tell_words(early.text)
            text = self._question(early.text, lambda dropped: None)
            if text and self.on_hearing is not None:
                self.on_hearing(Hearing(text, complete=True))  # the whole question, if they stop here
            return
        if not segment.final:
            if self._asr.qsize():
                return  # behind: skip this partial, the next one (or the final) supersedes it
            partial = self.transcriber.transcribe(segment)
            self._tell_words(partial.text)
            so_far = self._question(partial.text, lambda dropped: None)
            if so_far and self.on_hearing is not None:
                self.on_hearing(Hearing(so_far))
            if partial.text and self.on_partial is not None:
                self.on_partial(
                    Transcript(
                        partial.text,
                        partial.language,
                        segment.start,
                        segment.end,
                        False,
                        partial.asr_s,
                        partial.no_speech,
                    )
                )
            return
        transcript = self._early.pop(key, None) or self.transcriber.transcribe(segment)
        self._early = {k: v for k, v in self._early.items() if k[1] != segment.start}
        transcript.final = True
        self._tell_words(transcript.text)
        text = self._question(transcript.text, self.dropped.append)
        if text is None:
            return
        transcript.text = text
        offset = self._wall_offset or 0.0
        self.on_question(Heard(transcript, segment.end + offset, time.perf_counter()))

    def _tell_words(self, text: str) -> None:
        """Hand `on_words` the player's words in a transcript, if any: not noise, not Whisper's hallucinations, not
        the companion's own voice (a single word of the player's own counts: "Hey", "Wait")."""
        text = text.strip()
        if self.on_words is None or not text or is_hallucination(text) or self._is_own_echo(text):
            return
        rest = self._strip_own_words(text)[1].strip()
        if not rest or is_hallucination(rest) or self._is_own_echo(rest):
            return
        words = bare(rest).split()
        if len(words) == 1 and any(words[0] in bare(line).split() for line in self.recent_lines()):
            return  # one word the companion just said ("the"): its echo, not the player
        self.on_words(rest)

    def _question(self, text: str, drop: Callable[[tuple[str, str]], None]) -> str | None:
        """What the player asked in a transcript (None when nothing: `drop` gets what was left out, and why)."""
        text = text.strip()
        if not text:
            drop(("", "no speech (noise, music or Whisper's silence)"))
            return None
        if self._is_own_echo(text):
            drop((text, "the companion's own voice"))
            return None
        own, rest = self._strip_own_words(text)
        if own:
            drop((own, "the companion's own voice before the question"))
            if len(rest.split()) < 2 or is_hallucination(rest):
                drop((rest, "what is left after the companion's own words is not a question"))
                return None
        return rest

    def _strip_own_words(self, text: str) -> tuple[str, str]:
        """A question heard together with the end of the companion's own line ("...save them for later. How many
        lives?"): (the companion's words at its start, the rest). Two words or more of a recent line count."""
        words = text.split()
        keys = [bare(w) for w in words]
        best = 0
        for line in self.recent_lines():
            said = [bare(w) for w in line.split()]
            for k in range(len(keys) - 1, 1, -1):  # the longest run first; the question itself must be left
                if k <= best:
                    break
                head = keys[:k]
                if any(said[i : i + k] == head for i in range(len(said) - k + 1)):
                    best = k
                    break
        return " ".join(words[:best]), " ".join(words[best:])

    def _is_own_echo(self, text: str) -> bool:
        heard = bare(text)
        if len(heard) < 4:
            return False
        for line in self.recent_lines():
            said = bare(line)
            if heard in said or difflib.SequenceMatcher(None, heard, said).ratio() >= SELF_SIMILARITY:
                return True
        return False


def chunks(samples: np.ndarray, t0: float = 0.0, block_ms: int = 20) -> list[AudioChunk]:
    """A recording as the blocks a microphone would deliver."""
    n = RATE * block_ms // 1000
    return [AudioChunk(samples[i : i + n], t0 + i / RATE) for i in range(0, len(samples), n)]
