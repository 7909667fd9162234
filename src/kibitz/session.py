"""A watching session: source → perception → tracking → speak policy → companion → outputs.

The game loop runs on the calling thread and never waits for the model: the companion generates on its
own thread, and the loop only hands it a request when it is free.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TextIO

from kibitz.brain.companion import Companion
from kibitz.brain.policy import SpeakPolicy
from kibitz.brain.prompts import moment
from kibitz.core.config import KibitzConfig
from kibitz.core.events import priority
from kibitz.core.injection import neutralise_lines
from kibitz.core.records import Event, Frame, Hearing, Observation, Utterance
from kibitz.games.base import GAMES, DetectorSpec, GameAdapter, get_game
from kibitz.games.knowledge import builtin_tips
from kibitz.memory.knowledge import GameKnowledge, open_knowledge
from kibitz.outputs.sinks import Output
from kibitz.perception.base import PERCEIVERS, Perceiver
from kibitz.state.chronicle import Chronicle
from kibitz.state.detectors import GENERIC_DETECTORS, labelled_detectors
from kibitz.state.tracker import StateTracker

if TYPE_CHECKING:
    from kibitz.memory.commands import Outcome
    from kibitz.memory.live import PlayerMemory

log = logging.getLogger(__name__)

STATS_WINDOW = 60 * 60 * 60
ASKING_S = 6.0
"""After the player's last words heard aloud, how long no state prefix is prefetched unless their question came
(their speech may have been dropped as noise)."""
SUMMARY_CHARS = 200
"""A question's event line shows at most this much of it (the whole question goes to the model, cut to its share
of the context)."""


@dataclass
class LoopStats:
    """How the game loop kept up: per-frame work time and the gaps between frames."""

    frames: int = 0
    # Bounded (the last hour at 60 fps) so a session left running all day does not grow without end.
    work_ms: deque[float] = field(default_factory=lambda: deque(maxlen=STATS_WINDOW))
    gaps_ms: deque[float] = field(default_factory=lambda: deque(maxlen=STATS_WINDOW))
    gaps_while_speaking_ms: deque[float] = field(default_factory=lambda: deque(maxlen=STATS_WINDOW))
    wall_s: float = 0.0
    media_s: float = 0.0

    @property
    def fps(self) -> float:
        return self.frames / self.wall_s if self.wall_s else 0.0


@dataclass
class SessionResult:
    events: list[Event]
    utterances: list[Utterance]
    stats: LoopStats
    dropped: list[tuple[Event, str]]


def read_questions(stream: TextIO, into: queue.Queue[str]) -> threading.Thread:
    """Read the player's questions, one a line, on a daemon thread."""

    def run() -> None:
        for line in stream:
            if line.strip():
                into.put(line.strip())

    thread = threading.Thread(target=run, name="kibitz-stdin", daemon=True)
    thread.start()
    return thread


def describe_observation(
    obs: Observation, game: GameAdapter | None = None, precise: bool = False, title: str | None = None
) -> str:
    """The game state for prompts: the game's own account when its HUD is read, otherwise what generic perception
    saw (scene, numbers read by their labels, the screen's text, the VLM's look). `title` names a game kibitz has
    no adapter for."""
    parts: list[str] = []
    # A game named by the player, or one pixel perception recognised on its own (its HUD is being read).
    game = game or (get_game(obs.game) if obs.game is not None and obs.game in GAMES else None)
    if game is not None and obs.fields:
        parts.append(game.describe(obs, precise))
    else:
        what = title or (game.title if game else (f"the game {obs.game}" if obs.game else "the screen"))
        parts.append(f"Watching {what}; the screen shows: {obs.scene}.")
        if obs.fields:  # numbers read by their on-screen labels (perception.labels)
            parts.append("Read on screen: " + ", ".join(f"{k} {v}" for k, v in obs.values().items()) + ".")
        elif game is None and not obs.text and not obs.description:
            parts.append("No text or numbers could be read on screen.")
    if obs.text:
        # A line that gives orders to an AI is left out (core.injection): screen text is data, never instructions.
        parts.append("Text on screen: " + " | ".join(neutralise_lines(obs.text[:8])))
    if obs.description:
        parts.append(obs.description)
    return " ".join(parts)


def level_fields(specs: list[DetectorSpec]) -> list[str]:
    """The fields that name the level being played (from the level-change detector), for memory."""
    for spec in specs:
        if spec.kind == "level_change":
            fields = spec.params.get("fields") or [spec.params.get("field")]
            return [str(f) for f in fields if f]
    return []


class Session:
    def __init__(
        self,
        config: KibitzConfig,
        game: GameAdapter | None,
        companion: Companion | None,
        output: Output,
        react: bool = True,
        memory: PlayerMemory | None = None,
        perceiver: Perceiver | None = None,
        knowledge: GameKnowledge | None = None,
    ) -> None:
        """`perceiver` replaces the one `perception.mode` would choose (the bench shares one prototype bank);
        `knowledge` the game knowledge `knowledge.*` would open."""
        self.config = config
        self.memory = memory
        self.last_line = ""
        """The companion's last line, which a thumbs up or down (/up, /down) is about."""
        self.game = game
        self.companion = companion
        self.output = output
        self.react = react
        specs = game.detectors() if game else self._generic_specs()
        self.tracker = StateTracker(specs)
        self.chronicle = Chronicle(game, level_fields(specs))
        """This session's tallies and bests: the facts each event gets (how, where, how often)."""
        self.knowledge = knowledge
        """What kibitz knows about the game followed: tips after events, and for the companion's answers."""
        if knowledge is None and config.knowledge.enabled:
            self.knowledge = open_knowledge(config.knowledge, builtin_tips)
        if self.knowledge is not None:
            self.knowledge.follow(game.id if game else None)
            if companion is not None and companion.knowledge is None:
                companion.knowledge = self.knowledge
        self.policy = SpeakPolicy(config.policy)
        if memory is not None:
            memory.writer.level_fields = memory.writer.level_fields or level_fields(specs)
            self.policy.cooldown_factor = memory.profile.cooldown_factor()
        self.questions: queue.Queue[str] = queue.Queue()
        self.hearing: queue.Queue[Hearing] = queue.Queue()
        """What the player is saying aloud so far (the voice puts it from its thread): the question's prompt is
        evaluated as far as it is known while they talk."""
        self._asking: tuple[Asked, float] | None = None
        """While a question is being asked aloud: the game when the player started (its answer gets it, so the
        prompt evaluated while they talk stays valid), and the wall clock it is given up at."""
        self.recent_events: deque[str] = deque(maxlen=4)
        self.perceiver: Perceiver | None = perceiver
        self.media_clock = config.policy.clock == "media"
        self.last_observation: Observation | None = None
        """What the last frame showed."""
        self.prefetch = True
        self.prefetch_questions = False
        """Prefetch the head of a question's prompt (the state and recent events) rather than the reactions' prefix,
        which it starts with: where questions come aloud (`--voice`) and their answers must start soonest."""
        self.prefetch_every_s = 0.25
        """How often the state is looked at for a prefetch while idle (one runs only when the state changed)."""
        self._last_prefetch = 0.0
        self._waiting: list[tuple[str, float]] = []
        self._followed: str | None = None
        self.ratings: queue.Queue[tuple[str, int]] = queue.Queue()
        """Thumbs on the companion's lines, (line, +1 or -1), put from any thread, applied on the session's."""
        self.events: list[Event] = []
        """The events `run` saw (`step` returns each frame's)."""
        self.utterances: list[Utterance] = []
        """The lines said so far."""

    def _generic_specs(self, game_labels: dict[str, list[str]] | None = None) -> list[DetectorSpec]:
        """The detectors of a game kibitz has no plugin for: screen events, and the numbers read by their labels (the
        configured ones, and `game_labels`: those an added game brought)."""
        generic = [*GENERIC_DETECTORS, *labelled_detectors(self.config.perception.label_specs(game_labels or {}))]
        return [DetectorSpec(kind, params) for kind, params in generic]

    def describe(self, obs: Observation | None, precise: bool = False) -> str:
        if obs is None:
            return "Nothing seen yet."
        return describe_observation(obs, self.game, precise)

    def _perceive(self, frame: Frame) -> Observation:
        if self.perceiver is None:
            mode = self.config.perception.mode
            if mode == "auto":
                # Frames that carry their game's true state are read exactly; others are read from pixels.
                mode = "ram" if frame.state is not None and self.game is not None else "pixels"
            self.perceiver = PERCEIVERS.get(mode)(self.game, self.config.perception)
        obs = self.perceiver.perceive(frame)
        self.last_observation = obs
        for note in self.perceiver.notes():
            self.output.record(note)
        self._follow(obs)
        return obs

    def _follow(self, obs: Observation) -> None:
        """No game was named, but perception follows a built-in one and reads its HUD: watch for that game's events
        (deaths from its lives counter, its level changes...) instead of the generic screen events; and back to the
        generic ones when perception stops following it (the player switched games)."""
        if self.game is not None:
            return
        if self._followed is not None and obs.game != self._followed:
            log.info("The screen no longer shows %s: watching for generic screen events.", self._followed)
            self._followed = None
            self.tracker = StateTracker(self._generic_specs())
            self.chronicle.follow(None, [])
            if self.knowledge is not None:
                self.knowledge.follow(None)
        if obs.game is None or obs.game == self._followed:
            return
        if obs.game not in GAMES:  # a game added from screenshots: generic events, and those of the labels it brought
            from kibitz.perception.assets import game_labels

            self._followed = obs.game  # looked up once while it is followed, not on every frame
            if self.knowledge is not None:
                self.knowledge.follow(obs.game)  # the player's guides for it, if they gave any
            labels = game_labels(obs.game)
            if labels:
                self.tracker = StateTracker(self._generic_specs(labels))
                log.info("The screen shows %s: watching its labelled numbers too.", obs.game)
            return
        if not obs.fields:
            return
        self._followed = obs.game
        followed = get_game(obs.game)
        self.tracker = StateTracker(followed.detectors())
        self.chronicle.follow(followed, level_fields(followed.detectors()))
        if self.knowledge is not None:
            self.knowledge.follow(followed.id)
        if self.memory is not None:
            self.memory.follow(followed.id, followed.title, level_fields(followed.detectors()))
        log.info("The screen shows %s: watching for its events.", obs.game)

    def _question_event(self, text: str, obs: Observation) -> Event:
        if self.memory is not None:
            self.memory.ask(text)  # look for what may answer it now, while the line waits its turn
        shown = text if len(text) <= SUMMARY_CHARS else text[: SUMMARY_CHARS - 1].rstrip() + "…"
        return Event(
            t=obs.t,
            type="question",
            priority=priority("question"),
            summary=f"The player asked: {shown}",
            data={"text": text},
            game=self.game.id if self.game else None,
        )

    def step(self, frame: Frame) -> list[Event]:
        """Perceive one frame and act on it: events, the player's questions, the next line. Returns the new events."""
        wall = time.perf_counter()
        # The speak policy's clock: the wall's, or the frames' own (policy.clock: media).
        now = frame.t if self.media_clock else wall
        return self.observe(self._perceive(frame), now, wall)

    def observe(self, obs: Observation, now: float, wall: float, told: Iterable[Event] = ()) -> list[Event]:
        """Act on what was seen (a frame's observation, or the state a game sent itself: `kibitz serve`'s context
        messages) and on `told`, events reported from outside: track, offer events to the speak policy, speak."""
        self.last_observation = obs
        if self.memory is not None:
            self.memory.observe(obs)
        events = self.chronicle.update(obs, self.tracker.update(obs))
        if self.knowledge is not None:
            self.knowledge.level = self.chronicle.level
        return self._respond(obs, now, wall, events + list(told))

    def tick(self, t: float) -> None:
        """Nothing new was seen: still answer questions, collect finished lines and say the next one (a source that
        sends frames rarely, or none at all)."""
        wall = time.perf_counter()
        obs = self.last_observation or Observation(t=t, frame_index=-1, game=None, game_confidence=0.0, scene="unknown")
        self._respond(obs, t if self.media_clock else wall, wall, [])

    def _respond(self, obs: Observation, now: float, wall: float, seen: list[Event]) -> list[Event]:
        """Ratings, then the events seen and the player's questions, then the next line."""
        self._apply_ratings()
        events = self._handle_events(seen + self._questions(obs), now, wall)
        self._collect(self.utterances, now)
        self._maybe_speak(obs, now, wall)
        return events

    def refresh_profile(self) -> None:
        """The player's profile changed outside the session (the web app's settings): from the next line on, talk
        as it says."""
        if self.memory is None:
            return
        self.memory.reload_profile()
        self._follow_profile()

    def _follow_profile(self) -> None:
        """Talk as the player's profile now says: persona and how often."""
        assert self.memory is not None
        if self.companion is not None:
            self.companion.set_persona(self.memory.persona)
        self.policy.cooldown_factor = self.memory.profile.cooldown_factor()

    def _apply_ratings(self) -> None:
        while True:
            try:
                line, rating = self.ratings.get_nowait()
            except queue.Empty:
                return
            if self.memory is not None:
                self._apply(self.memory.on_feedback(line, rating), self.last_observation)

    def run(self, frames: Iterable[Frame], max_seconds: float | None = None, drain_s: float = 20.0) -> SessionResult:
        """Run until the source ends, max_seconds of media time pass, or Ctrl+C; then let the last line finish."""
        stats = LoopStats()
        start = last = time.perf_counter()
        try:
            for frame in frames:
                t0 = time.perf_counter()
                if stats.frames:
                    gap = (t0 - last) * 1000
                    stats.gaps_ms.append(gap)
                    if self.companion is not None and self.companion.working:
                        stats.gaps_while_speaking_ms.append(gap)
                last = t0
                self.events += self.step(frame)
                stats.frames += 1
                stats.media_s = frame.t
                stats.work_ms.append((time.perf_counter() - t0) * 1000)
                # Hand the GIL over once a frame: an unpaced loop (--fast) otherwise starves the companion's
                # and the VLM's threads for seconds (the emulator step holds the GIL).
                time.sleep(0)
                if max_seconds is not None and frame.t >= max_seconds:
                    break
        except KeyboardInterrupt:
            pass  # Ctrl+C ends the session cleanly: the line in progress finishes and the summary prints
        stats.wall_s = time.perf_counter() - start
        self.finish(drain_s, stats.media_s if self.media_clock else None)
        return SessionResult(self.events, self.utterances, stats, self.policy.dropped)

    def finish(self, drain_s: float = 20.0, now: float | None = None) -> None:
        """Close perception and let the line in progress end (at most `drain_s`)."""
        if self.perceiver is not None:
            self.perceiver.close()
        if self.companion is not None:
            deadline = time.perf_counter() + drain_s
            while self.companion.busy and time.perf_counter() < deadline:
                time.sleep(0.05)
            self._collect(self.utterances, time.perf_counter() if now is None else now)

    def _questions(self, obs: Observation) -> list[Event]:
        """Questions the player typed since the last frame, as events.

        A question about the picture that the router sends to the VLM waits for its look (at most the VLM's
        timeout), so the answer can use it; every other question is answered from the state at once.
        """
        asked: list[Event] = []
        while True:
            try:
                text = self.questions.get_nowait()
            except queue.Empty:
                break
            if self.memory is not None and not self._remember_said(text, obs):
                continue
            route = self.perceiver.ask(text, obs.t) if self.perceiver is not None else None
            if route is not None and route.path == "slow":
                self._waiting.append((text, time.perf_counter() + self.config.perception.vlm_budget_s))
            else:
                asked.append(self._question_event(text, obs))
        answered = self.perceiver.answered() if self.perceiver is not None else set()
        now = time.perf_counter()
        for text, deadline in list(self._waiting):
            if text in answered or now >= deadline:
                self._waiting.remove((text, deadline))
                asked.append(self._question_event(text, obs))
        return asked

    def _remember_said(self, text: str, obs: Observation) -> bool:
        """Let memory see what the player typed: feedback on the last line, a command about how to talk, a fact.
        False when nothing is left for the companion to answer."""
        assert self.memory is not None
        from kibitz.memory.commands import feedback_rating

        rating = feedback_rating(text)
        if rating is not None:
            if not self.last_line:
                self.output.info("Nothing to rate yet: /up or /down rates the companion's last line.")
                return False
            outcome = self.memory.on_feedback(self.last_line, rating)
            answer_needed = False
        else:
            said = self.memory.on_player_text(text)
            outcome, answer_needed = said.outcome, said.answer_needed
        self._apply(outcome, obs, say_ack=not answer_needed)
        return answer_needed

    def _apply(self, outcome: Outcome, obs: Observation | None, say_ack: bool = True) -> None:
        """A change to the profile takes effect from the next line on, and is acknowledged."""
        assert self.memory is not None
        from kibitz.memory.commands import describe_changes

        if outcome.changed:
            self._follow_profile()
            self.output.info(f"(profile: {describe_changes(outcome)}; `kibitz memory profile` shows it)")
        if outcome.ack and say_ack and obs is not None:
            self._say_fixed(outcome.ack, obs)

    def _say_fixed(self, text: str, obs: Observation) -> None:
        """A line that needs no model (an acknowledgement), shown like any other."""
        utt = Utterance(t=obs.t, event_ids=[], trigger="command", text=text, first_token_latency=0.0, finished=True)
        self.output.token(utt, text)
        self.output.done(utt)

    def _handle_events(self, new_events: list[Event], now: float, wall: float) -> list[Event]:
        """Show each event, offer it to the speak policy, and let critical ones cut a minor line short."""
        for event in new_events:
            if self.memory is not None and event.type != "question":
                notes = self.memory.on_event(event)
                if notes:
                    event.data["remembered"] = notes
            if self.knowledge is not None and self.config.knowledge.tips and self.companion is not None:
                self.knowledge.annotate(event, self.companion.spoiler_limit)
            self.output.event(event)
            if event.type != "question":
                self.recent_events.append(event.summary)
            # Without a companion (--quiet) nothing is spoken: nothing is queued for it either.
            if (self.react or event.type == "question") and self.companion is not None:
                self.policy.offer(event, now, wall)
                if self.companion is not None and event.priority >= self.config.policy.critical_priority:
                    self.companion.interrupt(event.priority)
        return new_events

    def _maybe_speak(self, obs: Observation, now: float, wall: float) -> None:
        """Hand the companion its next line when it is free; otherwise prefetch the prompt for this state."""
        if self.companion is None or self.companion.busy:
            return
        request = self.policy.next(now, wall)
        hearing = _newest(self.hearing)
        asking = self._asking[0] if self._asking is not None and wall < self._asking[1] else None
        if hearing is not None:
            # The player is asking aloud: the game as it was when they started is what they ask about.
            asking = asking or self._asked(obs)
            self._asking = (asking, wall + ASKING_S)
        if request is not None:
            if request.question is not None:
                asked = asking or self._asked(obs)
                self._asking = None
                self.companion.submit(request, asked.state, asked.context, obs.t, now=asked.now)
            else:
                self.companion.submit(request, self.describe(obs), list(self.recent_events), obs.t)
        elif asking is not None:
            # Their question's prompt is evaluated as far as it is heard while they talk; nothing else meanwhile.
            if hearing is not None:
                self.companion.prepare(asking.state, asking.context, hearing, asking.now)
        elif self.prefetch and now - self._last_prefetch >= self.prefetch_every_s:
            # Idle: evaluate the prompt prefix for the current state now, so the next event (or question) only
            # costs its own few tokens.
            self._last_prefetch = now
            context = list(self.recent_events) if self.prefetch_questions else None
            self.companion.prefetch(self.describe(obs), context)

    def _asked(self, obs: Observation) -> Asked:
        """The game for a question asked now: the state reactions get (a cached prompt prefix), the recent events,
        and what the state leaves out at this moment (its ticking numbers)."""
        state = self.describe(obs)
        return Asked(state, list(self.recent_events), moment(state, self.describe(obs, precise=True)))

    def _collect(self, utterances: list[Utterance], now: float) -> None:
        if self.companion is None:
            return
        while True:
            try:
                utt = self.companion.finished.get_nowait()
            except queue.Empty:
                return
            if utt.text:
                utterances.append(utt)
                self.last_line = utt.text
            self.policy.spoke(now)


@dataclass(frozen=True, slots=True)
class Asked:
    """The game a question is asked about (see Session._asked)."""

    state: str
    context: list[str]
    now: str


def _newest(items: queue.Queue[Hearing]) -> Hearing | None:
    """The last item put, the others dropped (None if there is none)."""
    newest = None
    while True:
        try:
            newest = items.get_nowait()
        except queue.Empty:
            return newest
