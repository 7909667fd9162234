"""One player's live session on the server: the same `Session` as `kibitz watch` (perception, tracking, the speak
policy, the companion, memory), run on its own thread so that nothing it does blocks the server's event loop.

What it watches: a built-in game played on the server, frames a browser page shares (the newest wins when they come
faster than perception runs), or nothing but the state a game mod sends (`context` messages). What it says goes out
through `WebOutput` as protocol messages, to the hub, which hands each to the WebSockets of that session (and the
overlays of its user) and to no one else.
"""

from __future__ import annotations

import contextlib
import io
import logging
import queue
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from kibitz.brain.companion import Companion
from kibitz.core.config import KibitzConfig, SourceConfig
from kibitz.core.errors import KibitzError
from kibitz.core.events import priority
from kibitz.core.injection import neutralise_lines
from kibitz.core.persona import load_persona
from kibitz.core.records import Event, Frame, Hearing, Observation, Provenance, Reading, Utterance
from kibitz.games.base import GAMES, get_game
from kibitz.outputs.sinks import Fanout, Output
from kibitz.server import protocol as p
from kibitz.server.metrics import Metrics
from kibitz.session import Session

if TYPE_CHECKING:
    from kibitz.brain.llm.base import LLMBackend
    from kibitz.memory.embed import TextEmbedder
    from kibitz.memory.live import PlayerMemory
    from kibitz.sources.base import FrameSource
    from kibitz.voice.asr import Transcriber
    from kibitz.voice.live import Cut, Voice
    from kibitz.voice.records import Transcript

log = logging.getLogger(__name__)

STATE_EVERY_S = 0.5
"""The state panel is refreshed at most this often..."""
STATE_HEARTBEAT_S = 5.0
"""...and at least this often when nothing changed (its frame count, its clock)."""
MAX_SIDE = 4096
"""Pixels of a shared frame's longer side."""
LINES_KEPT = 64
"""Recent lines a rating can refer to."""
CONTEXT_QUEUE = 32
"""Context messages waiting for the session (a mod sending faster gets a `too_fast` error)."""


@dataclass
class Services:
    """What every session of one server shares."""

    config: KibitzConfig
    metrics: Metrics
    publish: Callable[[LiveSession, dict[str, Any], bool], None]
    """Hand a message to the hub (from any thread): to the session's clients, and to its player's overlays if True."""
    end: Callable[[LiveSession, str], None]
    """The session ended on its own (an error): its clients are told why and disconnected."""
    backend: Callable[[], LLMBackend] | None
    """A backend for one more session (None: no companion, events only)."""
    embedder: TextEmbedder | None
    db: str | None
    """The memory store (`--db`); every session opens its own connection."""
    warm: bool = True
    transcriber: Callable[[], Transcriber] | None = None
    """The server's one speech recogniser, loaded at the first voice session (None: this server has no voice)."""


class WebOutput(Output):
    """The session's events and lines as protocol messages. Called from the session's and the companion's threads."""

    def __init__(self, live: LiveSession) -> None:
        self.live = live
        self.lock = threading.Lock()
        self._next = 1
        self._ids: dict[int, int] = {}
        self.lines: dict[int, str] = {}
        """Recent finished lines by number (a rating names the line)."""
        self.decisions: deque[str] = deque(maxlen=6)

    def _line(self, utt: Utterance) -> int:
        with self.lock:
            key = id(utt)
            if key not in self._ids:
                self._ids[key] = self._next
                self._next += 1
            return self._ids[key]

    def _send(self, message: p.Message, overlays: bool = True) -> None:
        self.live.send(message.model_dump(), overlays)

    def event(self, event: Event) -> None:
        self.live.services.metrics.add("events")
        self._send(
            p.EventOut(
                session=self.live.id,
                id=event.id,
                t=round(event.t, 3),
                event=event.type,
                priority=event.priority,
                summary=event.summary,
            )
        )

    def token(self, utt: Utterance, piece: str) -> None:
        self._send(p.TokenOut(session=self.live.id, line=self._line(utt), text=piece, at=round(time.time(), 4)))

    def done(self, utt: Utterance) -> None:
        n = self._line(utt)
        with self.lock:
            self._ids.pop(id(utt), None)
            self.lines[n] = utt.text
            while len(self.lines) > LINES_KEPT:
                self.lines.pop(next(iter(self.lines)))
        metrics = self.live.services.metrics
        metrics.add("lines")
        if utt.first_token_latency is not None and utt.trigger != "command":
            metrics.latency(utt.first_token_latency)
        latency = "" if utt.first_token_latency is None else f" in {utt.first_token_latency:.2f} s"
        self.decisions.append(f"said a line on {utt.trigger}{latency}" + (" (cut short)" if utt.interrupted else ""))
        first = None if utt.first_token_latency is None else round(utt.first_token_latency, 3)
        self._send(
            p.LineOut(
                session=self.live.id,
                line=n,
                text=utt.text,
                trigger=utt.trigger,
                first_token_s=first,
                interrupted=utt.interrupted,
            )
        )

    def error(self, utt: Utterance, message: str) -> None:
        n = self._line(utt)
        with self.lock:
            self._ids.pop(id(utt), None)
        self.live.services.metrics.add("line_errors")
        self.decisions.append(f"a line on {utt.trigger} failed")
        self._send(p.LineError(session=self.live.id, line=n, message=message))

    def record(self, obj: dict[str, Any]) -> None:
        route = obj.get("route") or obj.get("kind")
        if route:
            self.decisions.append(f"perception: {route}")

    def info(self, message: str) -> None:
        self._send(p.Info(message=message), overlays=False)  # for the player, not for the stream


class SharedFrames:
    """The newest frame a page sent, taken by the session when it is ready; a frame replaced before it was taken
    is dropped and counted. The picture is decoded on the session's thread, never on the event loop."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.data: bytes | None = None
        self.received = 0
        self.dropped = 0
        self._woken = False

    def put(self, data: bytes) -> None:
        """Keep `data` as the newest frame (one perception never took is dropped and counted)."""
        with self.cond:
            self.dropped += self.data is not None
            self.data = data
            self.received += 1
            self.cond.notify()

    def take(self, timeout: float) -> bytes | None:
        """The newest frame, waiting at most `timeout` for one (or until `wake`)."""
        with self.cond:
            if self.data is None and not self._woken:
                self.cond.wait(timeout)
            data, self.data, self._woken = self.data, None, False
        return data

    def wake(self) -> None:
        """Something else came for the session (a question, a context message): stop waiting for a frame."""
        with self.cond:
            self._woken = True
            self.cond.notify()


def decode_frame(data: bytes) -> np.ndarray:
    """A shared frame as an RGB array, or ValueError saying what is wrong with it."""
    from PIL import Image, UnidentifiedImageError

    if len(data) > p.MAX_FRAME:
        raise ValueError(f"A frame may be at most {p.MAX_FRAME} bytes; this one has {len(data)}.")
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format not in {"JPEG", "PNG", "WEBP"}:
                raise ValueError(f"A frame must be a JPEG, PNG or WebP picture, not {image.format}.")
            w, h = image.size
            if not (16 <= w <= MAX_SIDE and 16 <= h <= MAX_SIDE):
                raise ValueError(f"A frame must be 16 to {MAX_SIDE} pixels a side; this one is {w}×{h}.")
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise ValueError(f"The frame is not a picture that can be read ({type(exc).__name__}).") from None


def context_observation(msg: p.Context, t: float, index: int) -> tuple[Observation, list[Event]]:
    """A game's own account of its state as an observation (its numbers are true state, like an emulator's RAM),
    and the events it reported. Its text is data: lines giving orders to an AI are left out."""
    fields = {k: Reading(v, Provenance.RAM) for k, v in msg.state.items()}
    obs = Observation(
        t=t,
        frame_index=index,
        game=msg.game,
        game_confidence=1.0 if msg.game else 0.0,
        scene=msg.scene,
        fields=fields,
        text=tuple(neutralise_lines(msg.text)),
    )
    events = [
        Event(t=t, type=e.type, priority=priority(e.type), summary=neutralise_lines([e.summary])[0], game=msg.game)
        for e in msg.events
    ]
    return obs, events


class LiveSession:
    def __init__(self, services: Services, user: str, hello: p.Hello) -> None:
        """Raises KibitzError (one sentence) when what the player asked for cannot be watched."""
        self.id = secrets.token_urlsafe(9)
        self.services = services
        self.user = user
        self.watch = hello.watch
        self.persona_name = hello.persona
        self.started = time.time()
        self.config = services.config.model_copy(deep=True)
        self.game = None
        if isinstance(self.watch, p.WatchGame):
            if self.watch.game not in GAMES:
                raise KibitzError(f"Unknown game {self.watch.game!r}; built-in games: {', '.join(GAMES.names())}.")
            self.game = get_game(self.watch.game)
            self.game.check_installed()
        if self.persona_name is not None:
            load_persona(self.persona_name)  # an unknown persona is refused now, not on the session's thread
        if self.game is not None:
            self.title = self.game.title
        else:
            self.title = self.watch.title if isinstance(self.watch, p.WatchContext) else "the shared screen"
        self.frames = SharedFrames()
        self.contexts: queue.Queue[p.Context] = queue.Queue(maxsize=CONTEXT_QUEUE)
        self.questions: queue.Queue[str] = queue.Queue()
        self.hearing: queue.Queue[Hearing] = queue.Queue()
        """What the player is saying aloud before their question is final (the voice's guesses)."""
        self.ratings: queue.Queue[tuple[str, int]] = queue.Queue()
        """Questions and ratings, kept from the first message on (the session may still be loading)."""
        self.output = WebOutput(self)
        self.session: Session | None = None
        self.ready = threading.Event()
        self._stop = threading.Event()
        self._refresh = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"kibitz-session-{self.id}", daemon=True)
        self._last_state = 0.0
        self._dropped_seen = 0
        self._drops_counted = 0
        self._last_state_sent: dict[str, Any] = {}
        self._last_state_at = 0.0
        self.frame_count = 0
        """Frames perceived."""
        self.voice_wanted = hello.voice
        self.push_to_talk = hello.push_to_talk
        self.voice: Voice | None = None
        self._audio_t = 0.0
        self._speech_seq = 0
        self._speech_buffer: list[np.ndarray] = []
        self._speech_resampler: Any = None
        self.audio_dropped = 0
        """Microphone blocks that came before the voice was ready."""

    # --- from the event loop ---------------------------------------------------------------------------------
    def start(self) -> None:
        self.services.metrics.add("sessions")
        with self.services.metrics.lock:
            self.services.metrics.active += 1
        self._thread.start()

    def stop(self) -> None:
        """End the session (the player left); its thread finishes the line in progress and closes memory."""
        self._stop.set()
        self.frames.wake()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def join(self, timeout: float) -> None:
        if self._thread.ident is not None:  # started
            self._thread.join(timeout)

    def profile_changed(self) -> None:
        """The player changed their profile (REST): the session reads it again before its next frame."""
        self._refresh.set()
        self.frames.wake()

    def ask(self, text: str) -> None:
        self.questions.put(text)
        self.frames.wake()

    def hear(self, pcm: bytes) -> None:
        """Microphone audio from the page (on the event loop: only converts and queues)."""
        from kibitz.voice.audio import pcm16_to_float
        from kibitz.voice.records import AudioChunk

        samples = pcm16_to_float(pcm)
        chunk = AudioChunk(samples, self._audio_t)
        self._audio_t += len(samples) / p.AUDIO_RATE
        voice = self.voice
        if voice is None:
            self.audio_dropped += 1
            return
        voice.ear.hear(chunk)

    def talk(self, pressed: bool) -> None:
        if self.voice is not None:
            self.voice.ear.talk(pressed)

    def rate(self, line: int, rating: int) -> bool:
        """False when no recent line has that number."""
        text = self.output.lines.get(line)
        if text is None:
            return False
        self.ratings.put((text, rating))
        self.frames.wake()
        return True

    def context(self, msg: p.Context) -> bool:
        """False when the session is behind by more than CONTEXT_QUEUE messages."""
        try:
            self.contexts.put_nowait(msg)
        except queue.Full:
            return False
        self.frames.wake()
        return True

    def send(self, message: dict[str, Any], overlays: bool = True) -> None:
        self.services.publish(self, message, overlays)

    def _error(self, code: str, message: str) -> None:
        """An error for the player's own page (never on stream)."""
        self.send(p.Error(code=code, message=message).model_dump(), overlays=False)

    # --- on the session's thread -----------------------------------------------------------------------------
    def _open_memory(self) -> PlayerMemory | None:
        if not self.config.memory.enabled:
            return None
        from kibitz.memory.live import PlayerMemory
        from kibitz.memory.store import open_store

        store = open_store(self.services.db, embedder=self.services.embedder)
        base = load_persona(self.persona_name or self.config.persona.name)
        memory = PlayerMemory(
            store,
            self.user,
            base,
            self.game.id if self.game else "",
            self.title,
            question_wait_s=self.config.memory.question_wait_s,
        )
        if self.persona_name is None and memory.profile.persona:
            try:
                memory.base_persona = load_persona(memory.profile.persona)  # the player's own choice
            except KibitzError as exc:  # a persona file since removed: the default speaks, the session goes on
                log.warning("session %s: the profile's persona cannot be loaded: %s", self.id, exc.message)
        return memory

    def _run(self) -> None:
        memory: PlayerMemory | None = None
        companion: Companion | None = None
        source: FrameSource | None = None
        ended = ""
        try:
            memory = self._open_memory()
            persona = memory.persona if memory is not None else load_persona(self.persona_name or "buddy")
            output: Output = self.output
            if self.voice_wanted and self.services.backend is not None:
                self.voice = self._open_voice(persona)
                if self.voice is not None:
                    output = Fanout([self.voice.output, self.output])
            if self.services.backend is not None:
                llm = self.config.llm
                companion = Companion(
                    self.services.backend(),
                    persona,
                    max_tokens=llm.max_tokens,
                    temperature=llm.temperature,
                    on_token=output.token,
                    on_done=output.done,
                    on_draft=output.draft,
                    on_error=output.error,
                    recall=memory,
                    on_free=self.frames.wake,  # a question that waited for the line in progress goes at once
                )
                companion.start(warm=self.services.warm)
                if self.voice is not None:
                    self.voice.attach(companion)
            self.session = Session(self.config, self.game, companion, output, memory=memory)
            self.session.questions, self.session.ratings = self.questions, self.ratings
            self.session.hearing = self.hearing
            self.session.prefetch_questions = self.voice is not None  # questions come aloud
            self.ready.set()
            if self.game is not None:
                from kibitz.sources import make_source

                source = make_source(SourceConfig(kind="emulator", realtime=True), self.game, self.config.seed)
                self._play(source)
            else:
                self._listen()
        except KibitzError as exc:
            ended = exc.message
        except Exception as exc:  # a bug: this session ends with a reason, the server and other sessions go on
            log.exception("session %s failed", self.id)
            ended = f"The session stopped on an error ({type(exc).__name__}); start a new one."
        finally:
            self.ready.set()
            if self.session is not None:
                with contextlib.suppress(Exception):  # perception's threads end; a line in progress may finish
                    self.session.finish(drain_s=0.0 if self.stopped else 5.0)
            if companion is not None:
                companion.stop(timeout=5.0, cut=self.stopped)  # the player left: nobody hears the rest
            if self.voice is not None:
                with contextlib.suppress(Exception):
                    self.voice.close()
            if memory is not None:
                memory.close()
                memory.store.close()
            if source is not None:
                source.close()
            with self.services.metrics.lock:
                self.services.metrics.active -= 1
            if not self.stopped:  # it ended on its own: say why, and let the page know it is over
                self.services.end(self, ended or f"The game {self.title} ended; start a new session.")

    def _open_voice(self, persona: Any) -> Voice | None:
        """The session's ears and voice, or None (said to the page) when this server cannot talk."""
        if self.services.transcriber is None:
            self._error("voice", "This server has no voice (start it with the voice extra installed).")
            return None
        try:
            from kibitz.voice.live import Voice

            settings = self.config.voice.model_copy(update={"echo": "none", "push_to_talk": self.push_to_talk})
            language = settings.language or persona.language
            voice = Voice.open(
                settings,
                persona,
                on_question=self._heard,
                on_partial=self._partial,
                on_hearing=self._hearing,
                transcriber=self.services.transcriber().with_language(None if language == "auto" else language),
            )
            voice.on_cut = self._hush
            voice.start(microphone=False, speakers=False, sink=self._speech)
        except KibitzError as exc:
            self._error("voice", f"Voice is off for this session: {exc.message}")
            return None
        how = "hold the talk button" if self.push_to_talk else "just talk"
        self.output.info(f"Voice is ready: {how}. {voice.notice or ''}".strip())
        return voice

    def _heard(self, text: str) -> None:
        self.send(p.HeardOut(session=self.id, text=text, final=True).model_dump(), overlays=False)
        self.ask(text)

    def _hearing(self, hearing: Hearing) -> None:
        self.hearing.put(hearing)
        self.frames.wake()  # the question's prompt is evaluated while the player talks

    def _partial(self, transcript: Transcript) -> None:
        self.send(p.HeardOut(session=self.id, text=transcript.text, final=False).model_dump(), overlays=False)

    def _hush(self, cut: Cut) -> None:
        self._speech_buffer.clear()
        self.send(p.Hush(session=self.id, said=cut.heard).model_dump())

    def _speech(self, block: np.ndarray) -> None:
        """20 ms of the companion's voice (48 kHz, from the playback clock): sent in 100 ms pieces at 24 kHz, to the
        page and the overlays; silence is not sent."""
        import base64

        import soxr

        from kibitz.voice.audio import float_to_pcm16

        if self._speech_resampler is None:
            self._speech_resampler = soxr.ResampleStream(48_000, p.SPEECH_RATE, 1, dtype="float32")
        samples = np.asarray(self._speech_resampler.resample_chunk(block), dtype=np.float32).reshape(-1)
        sounding = bool(len(samples)) and float(np.abs(samples).max()) > 1e-3
        if not sounding and not self._speech_buffer:
            return
        self._speech_buffer.append(samples)
        if len(self._speech_buffer) < 5 and sounding:
            return
        piece = np.concatenate(self._speech_buffer)
        self._speech_buffer.clear()
        if float(np.abs(piece).max()) <= 1e-3:
            return
        self._speech_seq += 1
        pcm = base64.b64encode(float_to_pcm16(piece)).decode("ascii")
        self.send(p.AudioOut(session=self.id, seq=self._speech_seq, rate=p.SPEECH_RATE, pcm16=pcm).model_dump())

    def _play(self, source: FrameSource) -> None:
        """A built-in game on the server, in real time."""
        assert self.session is not None
        for frame in source.frames():
            if self._stop.is_set():
                return
            self._contexts(frame.t)
            self.session.step(frame)
            self.frame_count += 1
            self.services.metrics.add("frames")
            self._state(frame.t)

    def _listen(self) -> None:
        """Frames shared by a page (the newest wins) and context messages, as they come."""
        assert self.session is not None
        start = time.perf_counter()
        index = 0
        while not self._stop.is_set():
            data = self.frames.take(timeout=0.1)
            t = time.perf_counter() - start
            seen = self._contexts(t)
            if data is not None:
                try:
                    image = decode_frame(data)
                except ValueError as exc:
                    self.services.metrics.add("rejected")
                    self._error("bad_frame", str(exc))
                else:
                    self.session.step(Frame(t=t, image=image, source="browser", index=index))
                    index += 1
                    self.frame_count += 1
                    self.services.metrics.add("frames")
                    seen = True
            if not seen:
                self.session.tick(t)
            self._state(t)

    def _contexts(self, t: float) -> bool:
        """Act on the context messages that came since the last frame (and on a changed profile); True if there
        were any."""
        assert self.session is not None
        if self._refresh.is_set():
            self._refresh.clear()
            try:
                self.session.refresh_profile()
            except (KibitzError, TimeoutError) as exc:
                log.warning("session %s could not read the changed profile: %s", self.id, exc)
        seen = False
        while True:
            try:
                msg = self.contexts.get_nowait()
            except queue.Empty:
                return seen
            obs, events = context_observation(msg, t, -1)
            wall = time.perf_counter()
            self.session.observe(obs, t if self.session.media_clock else wall, wall, told=events)
            seen = True

    def _state(self, t: float) -> None:
        """The state panel, at most every STATE_EVERY_S."""
        assert self.session is not None
        now = time.perf_counter()
        if now - self._last_state < STATE_EVERY_S:
            return
        self._last_state = now
        dropped = self.session.policy.dropped
        for event, why in dropped[self._dropped_seen :]:
            self.output.decisions.append(f"did not speak on {event.type}: {why}")
        self._dropped_seen = len(dropped)
        if self.frames.dropped > self._drops_counted:
            self.services.metrics.add("frames_dropped", self.frames.dropped - self._drops_counted)
            self._drops_counted = self.frames.dropped
        obs = self.session.last_observation
        fields = {k: v for k, v in (obs.values() if obs else {}).items() if isinstance(v, int | float | str)}
        state = p.StateOut(
            session=self.id,
            t=round(t, 2),
            game=obs.game if obs else None,
            game_confidence=round(obs.game_confidence, 3) if obs else 0.0,
            scene=obs.scene if obs else "unknown",
            fields=fields,
            text=list(obs.text[:4]) if obs else [],
            recent=list(self.session.recent_events),
            decisions=list(self.output.decisions),
            frames=self.frame_count,
            dropped_frames=self.frames.dropped,
        ).model_dump()
        # Only what changed (and a heartbeat every few seconds): a hundred idle sessions send next to nothing.
        same = {k: v for k, v in state.items() if k not in ("t", "frames")}
        if same == self._last_state_sent and now - self._last_state_at < STATE_HEARTBEAT_S:
            return
        self._last_state_sent, self._last_state_at = same, now
        self.send(state)

    def describe(self) -> dict[str, Any]:
        return {
            "session": self.id,
            "watching": self.watch.kind,
            "title": self.title,
            "started": self.started,
            "alive": self.alive,
        }
