"""Voice for a session: builds the ears and the voice from configuration and wires them to the companion.

    voice = Voice.open(config.voice, persona, on_question=session.questions.put, on_hearing=session.hearing.put)
    output = Fanout([voice.output, ...])        # the companion's lines are spoken
    voice.attach(companion)                     # the player talking over it cuts the line
    voice.start(microphone=True, speakers=True)  # or feed audio with voice.ear.hear(...) (files, the web app)

`kibitz watch --voice`, `kibitz chat --voice`, the server's voice sessions and `kibitz bench voice` all go
through this one class.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kibitz.core.config import VoiceConfig
from kibitz.core.persona import Persona
from kibitz.core.records import Hearing, Utterance
from kibitz.voice.asr import Transcriber
from kibitz.voice.audio import AudioError
from kibitz.voice.echo import make_echo_canceller
from kibitz.voice.listener import Ear, Heard
from kibitz.voice.playback import ClockPlayer, DevicePlayer, Mixer, Player
from kibitz.voice.records import SpeechStarted, Transcript
from kibitz.voice.speaker import VoiceOutput
from kibitz.voice.tts import VoiceSpec, load_voice, voice_for
from kibitz.voice.vad import Segmenter, SegmenterSettings, make_vad

log = logging.getLogger(__name__)

RESUME_AFTER_S = 1.5
"""A pause for a sound that started while the companion spoke ends after this long without words (it goes on)."""
LATE_WORDS_S = 5.0
"""Words recognised this long after such a sound started still cut the line (the player did talk, recognised late)."""


@dataclass(slots=True)
class Cut:
    """A line the player talked over: what was heard, and what was not."""

    utt: Utterance
    heard: str
    unsaid: str
    at: float = field(default_factory=time.perf_counter)


def _chain(first: Callable[[Any], None] | None, then: Callable[[Any], None]) -> Callable[[Any], None]:
    def both(item: Any) -> None:
        if first is not None:
            first(item)
        then(item)

    return both


class Voice:
    def __init__(
        self,
        spec: VoiceSpec,
        output: VoiceOutput,
        ear: Ear,
        mixer: Mixer,
        config: VoiceConfig,
    ) -> None:
        self.spec = spec
        self.output = output
        self.ear = ear
        self.mixer = mixer
        self.config = config
        self.player: Player | None = None
        self.microphone: object | None = None
        self.cuts: list[Cut] = []
        self.heard: list[Heard] = []
        self._said: deque[tuple[float, str]] = deque(maxlen=32)
        self._companion: object | None = None
        self.on_cut: Callable[[Cut], None] | None = None
        self._speak_to: Path | None = None
        self._recorded: list[np.ndarray] = []
        self._pause_lock = threading.Lock()
        self._paused_at: float | None = None
        """perf_counter of the pause for a sound that may be the player starting to talk (None: no such pause)."""
        self._sound_at: float | None = None
        """perf_counter of the last such sound."""
        self.resumed: list[float] = []
        """perf_counter of each pause that ended with no words heard (game sound, a noise): the line went on."""

    @classmethod
    def open(
        cls,
        config: VoiceConfig,
        persona: Persona,
        on_question: Callable[[str], None],
        on_partial: Callable[[Transcript], None] | None = None,
        transcriber: Transcriber | None = None,
        on_hearing: Callable[[Hearing], None] | None = None,
    ) -> Voice:
        """Load the voice, the VAD and the recogniser (a few seconds the first time). `on_hearing` learns what the
        player is saying before their question is final (a session's `hearing` queue: the answer's prompt is
        evaluated meanwhile)."""
        spec = voice_for(config.voice or persona.voice.name, persona.language)
        engine = load_voice(spec)
        language = config.language or persona.language
        if transcriber is None:
            transcriber = Transcriber(language=None if language == "auto" else language)
        mixer = Mixer()
        holder: dict[str, Voice] = {}

        def cut(utt: Utterance, heard: str, unsaid: str) -> None:
            holder["voice"]._cut(utt, heard, unsaid)

        output = VoiceOutput(engine, mixer, speed=config.speed or persona.voice.speed, on_cut=cut)

        def question(heard: Heard) -> None:
            holder["voice"].heard.append(heard)
            on_question(heard.transcript.text)

        ear = Ear(
            Segmenter(make_vad(config.vad), SegmenterSettings(hangover_ms=config.hangover_ms)),
            transcriber,
            on_question=question,
            echo=make_echo_canceller(config.echo),
            mixer=mixer,
            speaking=lambda: output.speaking,
            on_barge_in=lambda started: holder["voice"].stop_for(started),
            on_partial=on_partial,
            recent_lines=lambda: holder["voice"].recent_lines(),
            push_to_talk=config.push_to_talk,
            on_hearing=on_hearing,
            on_words=(lambda words: holder["voice"].words_heard()) if config.confirm_barge_in else None,
        )
        voice = cls(spec, output, ear, mixer, config)
        holder["voice"] = voice
        mixer.on_start = _chain(
            mixer.on_start, lambda sentence: voice._said.append((time.perf_counter(), sentence.text))
        )
        return voice

    @property
    def notice(self) -> str | None:
        """A sentence to tell the player when the voice is not a neural one."""
        if self.spec.quality != "neural":
            return f"Speaking with {self.spec.name}: {self.spec.about}."
        return None

    def attach(self, companion: object) -> None:
        """The companion whose line a barge-in stops (anything with a `cut()` method)."""
        self._companion = companion

    def start(
        self,
        microphone: bool = True,
        speakers: bool = True,
        sink: Callable[[np.ndarray], None] | None = None,
        mic_file: Path | None = None,
        speak_to: Path | None = None,
    ) -> None:
        """Start playback (to the speakers, to `speak_to` as a WAV file written at close, or in real time to `sink`)
        and listening (the microphone, or `mic_file` played in its place; nothing with `microphone` False)."""
        if speak_to is not None:
            if not speak_to.parent.is_dir():
                raise AudioError(f"Cannot write {speak_to}: the folder {speak_to.parent} does not exist.")
            self._speak_to = speak_to
            sink = self._recorded.append
        if speakers and speak_to is None:
            self.player = DevicePlayer(self.mixer, self.config.output_device)
        else:
            self.player = ClockPlayer(self.mixer, sink)
        self.player.start()
        if mic_file is not None:
            from kibitz.voice.mic import FileMicrophone

            recording = FileMicrophone(mic_file, self.ear.hear, delay_s=1.0)
            recording.start()
            self.microphone = recording
        elif microphone:
            from kibitz.voice.mic import Microphone

            mic = Microphone(self.ear.hear, self.config.input_device)
            mic.start()
            self.microphone = mic

    def barge_in(self, started: SpeechStarted | None = None) -> list[Cut]:
        """The player talks over the companion: playback stops, the line is cut to what was heard."""
        before = len(self.cuts)
        with self._pause_lock:
            self._paused_at = self._sound_at = None  # decided: the sound was the player
        if self._companion is not None:
            cut = getattr(self._companion, "cut", None)
            if cut is not None:
                cut()
        self.output.barge_in()
        return self.cuts[before:]

    def stop_for(self, started: SpeechStarted) -> None:
        """A sound started while the companion speaks: with `voice.confirm_barge_in`, pause it now and cut the line
        once words are heard (`words_heard`), or go on after RESUME_AFTER_S without any; otherwise cut it now."""
        if not self.config.confirm_barge_in or self.ear.push_to_talk:
            self.barge_in(started)
            return
        with self._pause_lock:
            self.output.pause()
            self._paused_at = self._sound_at = since = time.perf_counter()
        timer = threading.Timer(RESUME_AFTER_S, self._no_words, args=(since,))
        timer.daemon = True
        timer.start()

    def words_heard(self) -> None:
        """The ears recognised words: the sound that paused the companion (or did, up to LATE_WORDS_S ago, while it
        still speaks) is the player talking over the line."""
        with self._pause_lock:
            paused, self._paused_at = self._paused_at, None
            late = self._sound_at is not None and time.perf_counter() - self._sound_at <= LATE_WORDS_S
        if paused is not None or (late and self.output.speaking):
            self.barge_in()

    def _no_words(self, since: float) -> None:
        with self._pause_lock:
            if self._paused_at != since:
                return  # decided already (words came), or a newer pause has its own timer
            self._paused_at = None
            self.output.resume()
            self.resumed.append(time.perf_counter())

    def _cut(self, utt: Utterance, heard: str, unsaid: str) -> None:
        record = Cut(utt, heard, unsaid)
        self.cuts.append(record)
        if self.on_cut is not None:
            self.on_cut(record)

    def recent_lines(self, window_s: float = 20.0) -> list[str]:
        """What the companion said aloud lately (its own voice heard back is not a question)."""
        now = time.perf_counter()
        playing = [s.text for s in self.output.current_sentences()]
        return [text for at, text in self._said if now - at <= window_s] + playing

    def close(self) -> None:
        mic = self.microphone
        if mic is not None:
            mic.close()  # type: ignore[attr-defined]
        self.ear.close(wait=True)
        if self.player is not None:
            self.player.close()
        self.output.close()
        if self._speak_to is not None:
            from kibitz.voice.audio import save

            audio = np.concatenate(self._recorded) if self._recorded else np.zeros(0, np.float32)
            save(self._speak_to, audio, self.mixer.rate)
