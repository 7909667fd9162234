"""One player's memory during a session. A worker thread owns the store: the game loop hands it writes and
never waits; the companion asks it for memories with a short deadline; what was written is embedded behind the
queries of every session (the embedder's `passages_later`) and stored when it comes back.

- `on_event` turns a game event into tallies (returned at once, so the line about a death can say "that's the
  fifth time here") and writes them behind the game's back;
- `on_player_text` applies commands ("talk less", "no spoilers") to the profile, answers them, and keeps the
  facts the player shared;
- `on_feedback` applies a thumbs up or down on the last line;
- `recall` finds what to bring up for a game state or a question.
"""

from __future__ import annotations

import concurrent.futures
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from kibitz.core.errors import KibitzError
from kibitz.core.persona import Persona, load_persona
from kibitz.core.records import Event, Observation
from kibitz.memory.commands import Outcome, feedback, interpret, is_command_only
from kibitz.memory.extract import MemoryWriter
from kibitz.memory.profile import Profile
from kibitz.memory.records import Hit, Memory
from kibitz.memory.store import MemoryStore

log = logging.getLogger(__name__)
T = TypeVar("T")
Job = tuple[Callable[[], Any], concurrent.futures.Future[Any]]

RECALL_TIMEOUT_S = 0.25
"""A reaction waits at most this long for the notes on the state (a search takes ~15-50 ms; a backlog must not
stall a reaction, which can do without them)."""
QUESTION_WAIT_S = 2.0
"""A question waits at most this long for the memories that may answer it (memory.question_wait_s): "what is my
cat called?" cannot be answered without them, and its search starts as soon as the question is typed."""

MIN_SCORE = 0.5
"""Hits scoring below this are not brought up (0.6·similarity dominates: unrelated memories score ~0.45)."""
IDLE_EMBED_S = 0.5
EMBED_BATCH = 2
"""Rows handed to the embedder at once when nobody waits for them (~20 ms each on one core)."""
STATE_NOTES, QUESTION_NOTES = 3, 4
STATE_TTL_S = 60.0


@dataclass(frozen=True, slots=True)
class Said:
    """What the player's message did: the profile change it asked for, the answer to it, whether anything is
    left for the model to answer."""

    outcome: Outcome
    answer_needed: bool


class PlayerMemory:
    def __init__(
        self,
        store: MemoryStore,
        user: str,
        persona: Persona,
        game: str = "",
        title: str = "the game",
        level_fields: list[str] | None = None,
        question_wait_s: float = QUESTION_WAIT_S,
    ) -> None:
        self.store, self.user, self.game, self.base_persona = store, user, game, persona
        self.question_wait_s = question_wait_s
        self.waits: list[float] = []
        """Seconds each question waited for its memories (each question's line also carries its wait)."""
        self._asked: dict[str, concurrent.futures.Future[list[Hit]]] = {}
        self.profile = Profile.from_dict(store.profile(user))
        self.errors: list[str] = []
        self._state_cache: dict[tuple[str, str | None], tuple[float, list[str]]] = {}
        self._written, self._embedding = True, False
        """Whether rows may wait for an embedding; whether a batch of them is with the embedder now."""
        # In order: a search sees every memory written before it (the player says a fact, then asks about it).
        self._jobs: queue.Queue[Job | None] = queue.Queue()
        self.writer = MemoryWriter(store, user, game, title, level_fields, self._write_later, self._replace_later)
        self._thread = threading.Thread(target=self._run, name="kibitz-memory", daemon=True)
        self._thread.start()
        # Load the player's index now, while the model loads, not at the first line (rows left without an
        # embedding by an earlier session go to the embedder once the worker is idle).
        self.submit(lambda: self.store.prepare(self.user))

    # --- the worker ----------------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            try:
                job = self._jobs.get(timeout=IDLE_EMBED_S)
            except queue.Empty:
                self._guard(self._embed_later)
                continue
            if job is None:
                return
            fn, future = job
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn())
                except BaseException as exc:  # reported to whoever waits, and kept for the session's end
                    future.set_exception(exc)
                    self.errors.append(str(exc))
            if self._jobs.empty():
                self._guard(self._embed_later)

    def _embed_later(self) -> None:
        """Hand what was written without an embedding to the embedder, behind every query (its own and other
        sessions'), so the next search has little left to embed first; the vectors come back as a job here.
        One batch at a time: this thread never waits for it."""
        if self._embedding or not self._written:
            return
        rows = self.store.pending(self.user, EMBED_BATCH)
        self._written = len(rows) == EMBED_BATCH  # more may wait; otherwise nothing does until the next write
        if not rows:
            return
        self._embedding = True
        future = self.store.embedder.passages_later([text for _, text in rows])
        future.add_done_callback(lambda done: self.submit(partial(self._embedded, rows, done)))

    def _embedded(self, rows: list[tuple[int, str]], done: concurrent.futures.Future[Any]) -> None:
        self._embedding = False
        vectors = done.result()  # a failure is reported, and tried again after the next write
        self._written = True  # look again: rows written meanwhile, or whose text changed meanwhile
        self.store.set_vectors(self.user, rows, vectors)

    def _guard(self, fn: Callable[[], Any]) -> None:
        try:
            fn()
        except KibitzError as exc:
            self.errors.append(exc.message)

    def submit(self, fn: Callable[[], T]) -> concurrent.futures.Future[T]:
        """Run `fn` on the memory worker, after everything submitted before it."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._jobs.put((fn, future))
        return future

    def _store_later(self, write: Callable[[], Any]) -> None:
        """A write on the worker, committed at once; its embedding follows (`_embed_later`)."""

        def run() -> None:
            write()
            self._written = True

        self.submit(run)

    def _write_later(self, memory: Memory) -> None:
        self._store_later(lambda: self.store.remember(memory, now=memory.updated or None, embed_now=False))

    def _replace_later(self, memory: Memory) -> None:
        self._store_later(lambda: self.store.replace(memory, embed_now=False))

    def _search(self, query: str, k: int) -> concurrent.futures.Future[list[Hit]]:
        return self.submit(lambda: self.store.search(self.user, query, game=self.game or None, k=k))

    # --- what the session hands over ---------------------------------------------------------------------------
    @property
    def persona(self) -> Persona:
        """The persona as this player wants it (their spoiler tolerance, verbosity, language, tone)."""
        return self.profile.apply(self.base_persona)

    def follow(self, game: str, title: str, level_fields: list[str]) -> None:
        """The game turned out to be a known one (recognised on screen): file what follows under it."""
        self.game = game
        self.writer = MemoryWriter(
            self.store, self.user, game, title, level_fields, self._write_later, self._replace_later
        )

    def observe(self, obs: Observation) -> None:
        self.writer.observe(obs)

    def on_event(self, event: Event) -> list[str]:
        """Remember the event; returns what memory adds to it for the companion's line, when it is news (a
        short note costs the line only a few tokens)."""
        self.writer.on_event(event)
        return self.writer.notes(event)

    def on_player_text(self, text: str) -> Said:
        """A message from the player: commands change the profile at once; facts are kept."""
        outcome = interpret(text, self.profile, self.base_persona)
        self._apply(outcome)
        if not outcome.rules:
            self.writer.on_player_text(text)
        return Said(outcome, answer_needed=not (outcome.rules and is_command_only(text)))

    def reload_profile(self, timeout: float = 2.0) -> None:
        """Read the profile again: it was changed outside this session (the web app's settings, another instance)."""
        values = self.submit(lambda: self.store.profile(self.user)).result(timeout)
        self.profile = Profile.from_dict(values)
        if self.profile.persona:
            self.base_persona = load_persona(self.profile.persona)

    def on_feedback(self, line: str, rating: int) -> Outcome:
        outcome = feedback(line, rating, self.profile, self.base_persona)
        self._apply(outcome)
        return outcome

    def _apply(self, outcome: Outcome) -> None:
        self.profile = outcome.profile
        if "persona" in outcome.changes and outcome.profile.persona:
            self.base_persona = load_persona(outcome.profile.persona)
        saved = outcome.profile.to_dict()
        for key in outcome.changes:
            self.submit(partial(self.store.set_profile, self.user, key, saved.get(key, "")))
        for topic, text in outcome.memories:
            memory = Memory(self.user, text, "", topic, "preference", 0.8, source="feedback")
            write = self.store.remember if topic == "feedback" else self.store.replace
            self._store_later(partial(write, memory, embed_now=False))

    def recall(self, query: str, k: int = 3, timeout: float = RECALL_TIMEOUT_S) -> list[Hit]:
        """The player's memories worth bringing up for `query` (a game state or a question), best first; nothing
        if the store does not answer in time."""
        return _hits(self._search(query, k), timeout)

    def recall_lines(self, query: str, k: int = 3, timeout: float = RECALL_TIMEOUT_S) -> list[str]:
        return [h.memory.text for h in self.recall(query, k, timeout)]

    def for_state(self, state: str) -> list[str]:
        """Notes for what is being played: looked up by game and level (not by the ever-changing state text)
        and kept for a while, so the prompt prefix that holds them stays cached in the model."""
        level = self.writer.level
        key = (self.game, level)
        now = time.monotonic()
        cached = self._state_cache.get(key)
        if cached is None or now - cached[0] > STATE_TTL_S:
            query = f"{self.writer.title} level {level}" if level else state
            cached = (now, self.recall_lines(query, STATE_NOTES))
            self._state_cache[key] = cached
        return cached[1]

    def ask(self, question: str) -> None:
        """The player typed a question: start looking for what may answer it now, before its line is due."""
        if question not in self._asked:
            self._asked[question] = self._search(question, QUESTION_NOTES)

    def for_question(self, question: str) -> list[str]:
        """What may answer the question, waiting for it at most `question_wait_s` (measured in `waits`)."""
        future = self._asked.pop(question, None) or self._search(question, QUESTION_NOTES)
        start = time.perf_counter()
        hits = _hits(future, self.question_wait_s)
        self.waits.append(time.perf_counter() - start)
        return [h.memory.text for h in hits]

    def close(self, timeout: float = 10.0) -> None:
        """Write the session's summary, finish every write, and stop the worker."""
        try:
            self.writer.end_session()
        except KibitzError as exc:
            self.errors.append(exc.message)
        self._jobs.put(None)  # after every write handed over before it
        self._thread.join(timeout)
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline and self.store.embed_pending(self.user):
            pass


def _hits(future: concurrent.futures.Future[list[Hit]], timeout: float) -> list[Hit]:
    """The search's hits worth bringing up, or nothing if it fails or does not answer in time."""
    try:
        hits = future.result(timeout)
    except concurrent.futures.TimeoutError:
        future.cancel()
        log.info("Memory search took over %.2f s: answered without it.", timeout)
        return []
    except KibitzError as exc:
        log.warning("Memory search failed: %s", exc.message)
        return []
    return [h for h in hits if h.score >= MIN_SCORE]
