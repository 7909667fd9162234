"""The companion's voice: an output sink that speaks each line sentence by sentence while it is being written.

Tokens arrive from the companion's thread; complete sentences go to one synthesis thread (TTS on one core), whose
audio is queued in the Mixer and played in real time. `barge_in()` (the player started talking) stops playback at
the next block, drops what was not yet played, tells the companion to stop writing, and cuts the line's record
to the words that were actually heard: the Utterance in the session's history, and a "barge_in" record in the
log saying what was said and what was not.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from kibitz.core.records import Utterance
from kibitz.outputs.sinks import Output
from kibitz.voice.playback import Mixer
from kibitz.voice.records import SpokenSentence
from kibitz.voice.sentences import SentenceSplitter, continuing
from kibitz.voice.tts import Engine

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Line:
    """One utterance being spoken."""

    key: int
    utt: Utterance
    splitter: SentenceSplitter
    sentences: list[SpokenSentence] = field(default_factory=list)
    written: bool = False
    """The companion finished writing it."""
    cut: bool = False
    first_audio_at: float | None = None
    """perf_counter when its first sample was played."""

    def heard(self) -> str:
        parts = []
        for s in self.sentences:
            heard = s.heard_text
            if heard:
                parts.append(heard)
            if s.unplayed:
                break
        spaced = any(" " in s.text for s in self.sentences)
        return (" " if spaced else "").join(parts)


class VoiceOutput(Output):
    """Speaks the companion's lines. `on_cut(utt, heard, unsaid)` hears about every barge-in."""

    def __init__(
        self,
        engine: Engine,
        mixer: Mixer,
        speed: float = 1.0,
        on_cut: Callable[[Utterance, str, str], None] | None = None,
    ) -> None:
        self.engine = engine
        self.mixer = mixer
        self.speed = speed
        self.on_cut = on_cut
        self._lock = threading.Lock()
        self._lines: dict[int, Line] = {}
        self._keys = 0
        self._jobs: queue.Queue[SpokenSentence | str | None] = queue.Queue()
        """Sentences to synthesise, and drafts (text) to synthesise ahead."""
        self._drafts: dict[int, SentenceSplitter] = {}
        self._drafted: dict[str, np.ndarray] = {}
        """Audio synthesised ahead for a first piece, by its text (a few, the newest)."""
        self._generation = 0
        """Bumped by every barge-in: synthesis started before it is thrown away."""
        self.tts_seconds: list[tuple[float, float]] = []
        """(synthesis seconds, audio seconds) of each sentence: the real-time factor."""
        self.errors: list[str] = []
        self.first_audio: dict[int, float] = {}
        """perf_counter of each line's first played sample, by id() of its Utterance."""
        self.first_piece: dict[int, list[float | str]] = {}
        """Each line's first piece, by id() of its Utterance: [text, perf_counter when it was complete (queued for
        synthesis), when it was synthesised] (for the bench's account of where the time goes)."""
        mixer.on_start = self._started
        self._thread = threading.Thread(target=self._synthesise, name="kibitz-tts", daemon=True)
        self._thread.start()

    # -- the companion's side -------------------------------------------------------------------------------
    def _line(self, utt: Utterance) -> Line:
        for line in self._lines.values():
            if line.utt is utt:
                return line
        self._forget_finished()
        self._keys += 1
        line = Line(self._keys, utt, SentenceSplitter(self.engine.spec.language))
        self._lines[line.key] = line
        return line

    def token(self, utt: Utterance, piece: str) -> None:
        with self._lock:
            line = self._line(utt)
            if line.cut:
                return
            for text in line.splitter.feed(piece):
                self._queue(line, text, continues=True)

    def done(self, utt: Utterance) -> None:
        with self._lock:
            line = self._line(utt)
            line.written = True
            if not line.cut:
                for text in line.splitter.flush():
                    self._queue(line, text)

    def error(self, utt: Utterance, message: str) -> None:
        self.done(utt)

    def draft(self, utt: Utterance, piece: str) -> None:
        """An answer that may be said soon: its first piece is synthesised ahead, so that if it is said its audio
        is ready (if not, it is forgotten)."""
        with self._lock:
            splitter = self._drafts.get(id(utt))
            if splitter is None:
                if len(self._drafts) > 8:
                    self._drafts.clear()
                splitter = self._drafts[id(utt)] = SentenceSplitter(self.engine.spec.language)
            elif splitter.done:
                return
            first = splitter.feed(piece)[:1]
            if first:
                splitter.done = True
                self._jobs.put(continuing(first[0]))

    def _queue(self, line: Line, text: str, continues: bool = False) -> None:
        """`continues`: a piece cut while the line is being written (its sentence may go on in the next)."""
        if not line.sentences:
            self.first_piece[id(line.utt)] = [text, time.perf_counter()]
        sentence = SpokenSentence(line.key, len(line.sentences), text, continues=continues)
        line.sentences.append(sentence)
        self._jobs.put(sentence)

    # -- synthesis ------------------------------------------------------------------------------------------
    def _speech(self, text: str) -> np.ndarray:
        """`text` synthesised (nothing, with the error kept, if that fails)."""
        start = time.perf_counter()
        try:
            audio = self.engine.synthesize(text, self.speed)
        except Exception as exc:  # one sentence lost, never the voice
            message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
            self.errors.append(message)
            log.warning("Could not speak a sentence: %s", message)
            return np.zeros(0, np.float32)
        if len(audio):
            self.tts_seconds.append((time.perf_counter() - start, len(audio) / self.engine.rate))
        return audio

    def _synthesise(self) -> None:
        while (sentence := self._jobs.get()) is not None:
            if isinstance(sentence, str):  # a draft's first piece, ahead
                if sentence not in self._drafted:
                    self._drafted = {**dict(list(self._drafted.items())[-3:]), sentence: self._speech(sentence)}
                continue
            generation = self._generation
            start = time.perf_counter()
            spoken = continuing(sentence.text) if sentence.continues else sentence.text
            ready = self._drafted.pop(spoken, None) if sentence.index == 0 else None
            audio = ready if ready is not None else self._speech(spoken)
            took = time.perf_counter() - start
            if sentence.index == 0:
                with self._lock:
                    line = self._lines.get(sentence.key)
                    if line is not None and id(line.utt) in self.first_piece:
                        self.first_piece[id(line.utt)].append(start + took)
            sentence.samples, sentence.rate = audio, self.engine.rate
            sentence.ready = True
            with self._lock:
                line = self._lines.get(sentence.key)
                dropped = line is None or line.cut or generation != self._generation
            if not dropped and len(audio):
                self.mixer.enqueue(sentence)

    def _started(self, sentence: SpokenSentence) -> None:
        line = self._lines.get(sentence.key)
        if line is not None and line.first_audio_at is None:
            line.first_audio_at = time.perf_counter()
            self.first_audio[id(line.utt)] = line.first_audio_at

    # -- the player's side ----------------------------------------------------------------------------------
    @property
    def speaking(self) -> bool:
        """Audio is playing, or a line is still being written or synthesised."""
        if self.mixer.active or any(isinstance(job, SpokenSentence) for job in list(self._jobs.queue)):
            return True  # (a draft being synthesised ahead is not speaking)
        with self._lock:
            # A line still being written, or with a sentence not yet played (being synthesised between two others).
            return any(
                not line.cut and (not line.written or any(s.unplayed for s in line.sentences))
                for line in self._lines.values()
            )

    def pause(self) -> None:
        """Stop playing at the next block, keeping everything where it is (the player may be starting to talk)."""
        self.mixer.pause()

    def resume(self) -> None:
        """Go on playing from where `pause` stopped (it was not the player)."""
        self.mixer.resume()

    def barge_in(self) -> list[Line]:
        """The player started talking: stop now, and cut each unfinished line's record to what was heard."""
        self.mixer.stop()
        with self._lock:
            self._generation += 1
            while True:
                try:
                    self._jobs.get_nowait()
                except queue.Empty:
                    break
            cut = []
            for key, line in list(self._lines.items()):
                unfinished = not line.written or any(s.unplayed for s in line.sentences)
                if unfinished and not line.cut:
                    line.cut = True
                    cut.append(line)
                del self._lines[key]
        for line in cut:
            heard = line.heard()
            whole = line.utt.text or " ".join(s.text for s in line.sentences)
            unsaid = whole[len(heard) :].strip() if whole.startswith(heard) else whole
            line.utt.text = heard
            line.utt.interrupted = True
            if self.on_cut is not None:
                self.on_cut(line.utt, heard, unsaid)
        return cut

    def current_sentences(self) -> list[SpokenSentence]:
        """The sentences of the lines still being spoken (queued, playing or being written)."""
        with self._lock:
            return [s for line in self._lines.values() for s in line.sentences]

    def _forget_finished(self) -> None:
        """Drop the lines that were fully played (their records are final); the caller holds the lock."""
        for key, line in list(self._lines.items()):
            if line.written and not any(s.unplayed for s in line.sentences):
                del self._lines[key]

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join(5.0)
