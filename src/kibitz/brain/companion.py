"""The Companion turns speak requests into streamed lines, on one worker thread that owns the model."""

from __future__ import annotations

import contextlib
import logging
import queue
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from kibitz.brain.llm.base import LLMBackend, Message
from kibitz.brain.policy import SpeakRequest
from kibitz.brain.postfilter import clean_line, line_complete
from kibitz.brain.prompts import PromptBuilder, barred_phrases, fallback_line, to_you
from kibitz.core.errors import KibitzError
from kibitz.core.events import spoiler_level
from kibitz.core.knowledge import Tip
from kibitz.core.persona import Persona
from kibitz.core.records import Event, Hearing, Utterance
from kibitz.core.spoiler import LIMIT, NONE, SOLUTION, rate
from kibitz.core.text import bare, sentence_ends

log = logging.getLogger(__name__)

TokenSink = Callable[[Utterance, str], None]
DoneSink = Callable[[Utterance], None]
ErrorSink = Callable[[Utterance, str], None]


class Recall(Protocol):
    """What the companion remembers about the player (kibitz.memory.live.PlayerMemory)."""

    def for_state(self, state: str) -> list[str]:
        """Notes for what is being played (they change rarely, so they stay in the cached prompt prefix)."""

    def for_question(self, question: str) -> list[str]:
        """Notes that may answer a question."""


class Knowing(Protocol):
    """What the companion knows about the game being played (kibitz.memory.knowledge.GameKnowledge)."""

    def for_question(self, question: str, limit: int) -> list[Tip]:
        """Tips and guide passages that may answer a question, within the spoiler `limit` (core.spoiler)."""

    def gave(self, text: str) -> None:
        """A line gave this tip after an event (it is not offered again this session)."""


QUESTION_EXTRA_TOKENS = 20
"""An answer may run this many tokens longer than a reaction (it gets a sentence and 15 words more)."""
MIN_VISIBLE_CHARS = 4
"""Hold back the first few characters so a "Name:" prefix can be removed before anything is shown (a shorter start
that a comma or a stop ends, "Oh," or "No.", is no name and shows at once)."""
OPENINGS_KEPT = 5
"""A reaction may not start with the first word of any of the last this many lines (the 1.5B model starts most with
"Oh no" or "Wow" otherwise: measured by `kibitz bench lines`)."""
OWN_SCRIPT_LANGUAGES = frozenset({"ko", "ja", "zh"})
"""Personas speaking these start every line in their own script: handed English facts and names, the 1.5B model
answered a Korean persona in English about a third of the time (kibitz bench lines, dev streams)."""
REPEAT_WINDOW_S = 600.0
"""A reaction may not copy a run of about three words from a line said within this many seconds (of the session's
clock) before it (kibitz bench lines counts a line repeated within 10 minutes)."""
GUESS_WAIT_S = 3.0
"""How long an answer written to the recogniser's guess at a question waits, once written, for the question."""


@dataclass(slots=True)
class Job:
    request: SpeakRequest | None
    """None for a prefetch job (evaluate the prompt prefix for `state`, say nothing)."""
    state: str
    context: list[str]
    t: float
    heard: Hearing | None = None
    """A prefetch for a question being asked: its prompt up to what was heard so far."""
    now: str = ""
    """For a question: what the state leaves out at the moment it was asked (prompts.moment)."""
    head: bool = False
    """A prefetch of the head of a question's prompt (the state and `context`, the recent events)."""
    guess: _Guess | None = None
    """For the recogniser's guess at a whole question (`heard` complete): the answer to write and hold."""


@dataclass(frozen=True, slots=True)
class Guessed:
    """What became of an answer written to the recogniser's guess at a question (`Companion.guesses`)."""

    question: str
    outcome: str
    """"said", or "dropped: why"."""
    started: float
    """When the model started on it (perf_counter)."""
    first_token: float | None
    """When its first visible piece was written, held back or not (perf_counter)."""


class _Guess:
    """The answer being written to the recogniser's guess at the whole question, a moment into the player's silence,
    before the end of their question is certain: its pieces are held back until the question comes (`confirm`:
    the same words about the same game, so the same prompt) and dropped if something else comes first."""

    def __init__(self, job: Job) -> None:
        self.key = _asked(job)
        self.job: Job | None = None
        """The question that confirmed the guess."""
        self.dropped = False
        self.why = ""
        """Why it was dropped (for the logs and `kibitz bench voice`)."""
        self.first_out: float | None = None
        """When its first piece was passed on (perf_counter)."""
        self.first_written: float | None = None
        """When its first piece was written (perf_counter)."""
        self._held: list[str] = []
        self._lock = threading.Lock()
        self.decided = threading.Event()

    def confirm(self, job: Job) -> bool:
        """`job` is the question guessed: its answer is this one (False when it is not, or the guess was dropped)."""
        with self._lock:
            if self.dropped or self.job is not None or _asked(job) != self.key:
                return False
            self.job = job
        self.decided.set()
        return True

    def drop(self, why: str) -> bool:
        """Something else came first: the answer is never said (nothing happens once it was confirmed). Whether
        it is dropped."""
        with self._lock:
            if self.job is None and not self.dropped:
                self.dropped, self.why = True, why
            dropped = self.dropped
        self.decided.set()
        return dropped

    def differs(self, job: Job) -> str:
        """How a question that is not the one guessed differs from it."""
        text, state, context, _ = _asked(job)
        if text != self.key[0]:
            return f"the question was heard as {job.request.question if job.request else ''!r}"
        return "the game was described otherwise" if (state, context) != self.key[1:3] else "its moment differed"

    def pass_on(self, utt: Utterance, piece: str, sink: TokenSink, draft: TokenSink | None = None) -> None:
        """A piece of the answer: held while the question is not confirmed (and handed to `draft`, which may prepare
        it), then passed on with all held before it."""
        with self._lock:
            if piece and self.first_written is None:
                self.first_written = time.perf_counter()
            self._held.append(piece)
            held = self.job is None
            if not held:
                text, self._held = "".join(self._held), []
        if held:
            if draft is not None and piece:
                draft(utt, piece)
            return
        if text:
            if self.first_out is None:
                self.first_out = time.perf_counter()
            sink(utt, text)

    def settle(self, utt: Utterance, sink: TokenSink, wait: float) -> bool:
        """Once the answer is written: wait for the question (up to `wait` s); True, with every held piece passed
        on, if it came; False (dropped) if not."""
        if not self.decided.wait(wait):
            self.drop(f"no question came within {wait:g} s")
        with self._lock:
            confirmed = self.job is not None
        if confirmed:
            self.pass_on(utt, "", sink)
        return confirmed


def _asked(job: Job) -> tuple[str | None, str, tuple[str, ...], str]:
    """What makes two questions' answers the same: their words (a transcript of the same words may differ in case
    and punctuation), and the game they are asked about."""
    question = job.request.question if job.request else None
    return (None if question is None else bare(question), job.state, tuple(job.context), job.now)


class Companion:
    """Owns the LLM backend on a single thread; the game loop hands it requests and never waits for it."""

    def __init__(
        self,
        backend: LLMBackend,
        persona: Persona,
        max_tokens: int = 40,
        temperature: float = 0.7,
        on_token: TokenSink | None = None,
        on_done: DoneSink | None = None,
        on_error: ErrorSink | None = None,
        recall: Recall | None = None,
        on_free: Callable[[], None] | None = None,
        on_draft: TokenSink | None = None,
        knowledge: Knowing | None = None,
    ) -> None:
        """`on_free` is called (on the companion's thread) each time it is free for the next line; `on_draft` gets
        the pieces of an answer written to the recogniser's guess at a question while it is held back (never to be
        shown: an output may prepare them, as the voice synthesises the first words)."""
        self.backend = backend
        self.persona = persona
        self.max_tokens = max_tokens
        self.prompts = self._prompts(persona)
        self.spoiler_limit = LIMIT[persona.spoiler_tolerance.value]
        self.recall = recall
        self.knowledge = knowledge
        """Tips for questions about the game (a session hands the companion its own when it has none)."""
        self._state_memories: tuple[str, list[str]] = ("", [])
        self.temperature = temperature
        self.on_token = on_token or (lambda u, s: None)
        self.on_done = on_done or (lambda u: None)
        self.on_error = on_error or (lambda u, m: None)
        self.on_free = on_free or (lambda: None)
        self.on_draft = on_draft
        self.jobs: queue.Queue[Job | None] = queue.Queue()
        self.finished: queue.Queue[Utterance] = queue.Queue()
        self._busy = threading.Event()
        self._prefetched: tuple[str, tuple[str, ...] | None] | None = None
        self._prepared: tuple[str, tuple[str, ...], str, Hearing] | None = None
        self._recalled: tuple[str, list[str]] = ("", [])
        """The notes recalled for the last question (the prepared prompt and the answer's use the same)."""
        self._known: tuple[str, list[str]] = ("", [])
        """The tips found for the last question."""
        self._interrupt = threading.Event()
        self._prefetching = threading.Event()
        self._abort_prefetch = threading.Event()
        self.prefetch_log: list[tuple[float, float]] = []
        """(start, seconds) of every prefetch, so benchmarks can show what an event waited for."""
        self._speaking_priority: int | None = None
        """Priority of the line being generated (None while idle or prefetching)."""
        self._guess: _Guess | None = None
        """The answer being written to a question the player may be done asking."""
        self.said: deque[str] = deque(maxlen=OPENINGS_KEPT)
        """The last lines said: the next reaction may not start as they did."""
        self.recent: deque[tuple[float, str]] = deque()
        """(clock, line) of the lines said in the last REPEAT_WINDOW_S: the next reaction may not copy a run of words
        from them, nor from the persona's examples."""
        self._focused: dict[str, int] = {}
        """Each kind of detail (cause, place, count...) → the line that last named it (`_focus`)."""
        self._lines = 0
        self.guesses: deque[Guessed] = deque(maxlen=100)
        """What became of the answers written to the recogniser's guesses."""
        self._warming_prefix = False
        """The last prefetch queued is a state's prefix (which a newer state's supersedes)."""
        self._prefetch_jobs = 0
        """Prefetch jobs queued or running (`_prefetching` is set while there is one)."""
        self._count_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="kibitz-companion", daemon=True)

    def _prompts(self, persona: Persona) -> PromptBuilder:
        """Prompts for this persona cut to the backend's context (its own token count)."""
        reply = self.max_tokens + QUESTION_EXTRA_TOKENS  # room for the longest reply, an answer
        return PromptBuilder(persona, self.backend.count_tokens, self.backend.context_window, reply)

    def start(self, warm: bool = True) -> None:
        if warm:
            self.backend.warm(self.prompts.warmup_messages())
        self._thread.start()

    @property
    def busy(self) -> bool:
        """A line is queued or being generated (a prefetch does not count: a new line aborts it)."""
        return self._busy.is_set()

    @property
    def working(self) -> bool:
        """The model is doing anything: a line or a prefetch."""
        return self._busy.is_set() or self._prefetching.is_set()

    def submit(self, request: SpeakRequest, state: str, context: list[str], t: float, now: str = "") -> None:
        """Queue a line to say; returns at once (a prefetch in progress stops at its next chunk). A question the
        companion guessed from the player's voice is the answer already being written (`now`: prompts.moment)."""
        self._busy.set()
        job = Job(request, state, context, t, now=now)
        guess = self._guess
        if guess is not None and guess.confirm(job):
            self._speaking_priority = max((e.priority for e in request.events), default=0)
            return
        if guess is not None:
            guess.drop(guess.differs(job) if request.question is not None else f"a {request.trigger} line came first")
        if self._prefetching.is_set():
            self._abort_prefetch.set()
        self.jobs.put(job)

    def _drop_guess(self, why: str) -> None:
        guess = self._guess
        if guess is not None:
            guess.drop(why)

    def interrupt(self, priority: int) -> bool:
        """Cut the line being spoken short if something more important happened; True if it will stop."""
        current = self._speaking_priority
        if self.busy and current is not None and priority > current:
            self._interrupt.set()
            return True
        return False

    def cut(self) -> bool:
        """Stop the line being written at its next piece, whatever its priority (the player started talking over
        it); True if one was being written."""
        if self.busy and self._speaking_priority is not None:
            self._interrupt.set()
            return True
        return False

    def prefetch(self, state: str, context: list[str] | None = None) -> None:
        """While idle, evaluate the prompt prefix for this state (skipped when it is what was last evaluated): the
        reactions' prefix, or with `context` (the recent events) the head of a question's prompt, which starts
        with it (for sessions where questions come aloud, whose answers must start soonest)."""
        key = (state, None if context is None else tuple(context))
        if key == self._prefetched or self.busy:
            return
        if self._prefetching.is_set():
            if not self._warming_prefix:
                return  # a question's prompt is being evaluated, or its answer written: not superseded by this
            self._abort_prefetch.set()  # stale (the game moved on): what it shares with this one stays cached
        self._prefetched = key
        self._queue_prefetch(Job(None, state, list(context or []), 0.0, head=context is not None), prefix=True)

    def _queue_prefetch(self, job: Job, prefix: bool) -> None:
        with self._count_lock:
            self._prefetch_jobs += 1
            self._warming_prefix = prefix
            self._prefetching.set()
        self.jobs.put(job)

    def prepare(self, state: str, context: list[str], heard: Hearing, now: str = "") -> None:
        """The player is asking something aloud: while idle, evaluate the question's prompt as far as it is known
        (the state, recent events and `now` (prompts.moment) when they start talking; then the words heard), so
        that when the question comes only what is new is evaluated; and on the recogniser's guess that they are
        done, write its answer, held back until the question comes (and dropped if it differs)."""
        key = (state, tuple(context), now, heard)
        if self.busy or key == self._prepared:
            return
        self._prepared = key
        self._drop_guess("the player went on talking")  # what they said so far is not the whole question
        job = Job(None, state, list(context), 0.0, heard, now)
        if heard.complete:  # the question may come before its answer is started: it is this answer all the same
            asked = SpeakRequest([], time.perf_counter(), question=heard.text)
            job.guess = self._guess = _Guess(Job(asked, state, list(context), 0.0, now=now))
        if self._prefetching.is_set():
            self._abort_prefetch.set()  # superseded: what it shares with this prompt stays cached
        self._queue_prefetch(job, prefix=False)

    def set_persona(self, persona: Persona) -> None:
        """Talk as this persona from the next line on (the player changed their profile)."""
        self.persona = persona
        self.prompts = self._prompts(persona)
        self.spoiler_limit = LIMIT[persona.spoiler_tolerance.value]
        self._prefetched = None

    def memories_for(self, state: str, refresh: bool = False) -> list[str]:
        """Notes about the player for the prompt's head. They are looked up again only when refreshing (a
        prefetch, while idle): a line reuses the notes of the last prefetch, so the cached prefix holds."""
        if self.recall is None:
            return []
        if refresh or not self._state_memories[0]:
            self._state_memories = (state, self.recall.for_state(state))
        return self._state_memories[1]

    def messages_for(self, job: Job, utt: Utterance | None = None) -> list[Message]:
        """The line's prompt; a question waits (bounded) for the memories that may answer it, timed on `utt`."""
        assert job.request is not None
        memories = self.memories_for(job.state)
        if job.request.question is not None:
            start = time.perf_counter()
            asked = self._recall_for(job.request.question)
            if utt is not None and self.recall is not None:
                utt.memory_wait = time.perf_counter() - start
            return self.prompts.question_messages(
                job.state,
                job.request.question,
                job.context,
                memories,
                asked,
                now=job.now,
                known=self._known_for(job.request.question),
            )
        events = job.request.events
        tip = next((e.data["tip"] for e in sorted(events, key=lambda e: -e.priority) if e.data.get("tip")), "")
        if tip and self.knowledge is not None:
            self.knowledge.gave(tip)
        focus = None if tip else self._focus(events)
        told = [_with_notes(e, plain=focus is not None and e is focus[0]) for e in events]
        return self.prompts.event_messages(job.state, told, memories, focus=focus[1] if focus else "", tip=tip)

    def _focus(self, events: list[Event]) -> tuple[Event, str] | None:
        """The one detail the line should name (the model is told it, and only it, beside what happened): of the
        most important event's details, the kind named longest ago (never named first; the event's own order
        breaks ties), so lines about the same kind of event name different things."""
        if not events:
            return None
        event = max(events, key=lambda e: e.priority)
        details = event.details
        if not details:
            # No facts beyond what happened: when what happened has a number ("The score passed 5000."), that is the
            # detail to name.
            said = (event.headline or event.summary).strip().rstrip(".!")
            if not re.search(r"\d", said) or event.type == "question":
                return None
            details = (("what", to_you(said[:1].lower() + said[1:])),)
        kind, phrase = min(details, key=lambda d: self._focused.get(d[0], -1))
        self._focused[kind] = self._lines
        return event, phrase

    def _known_for(self, question: str) -> list[str]:
        """What the game's knowledge offers for the question (the same for the prepared prompt and the answer)."""
        if self.knowledge is None:
            return []
        if self._known[0] != question:
            try:
                tips = self.knowledge.for_question(question, self.spoiler_limit)
            except Exception as exc:  # knowledge helps; an answer does without it
                log.warning("Game knowledge failed for a question: %s", exc)
                tips = []
            self._known = (question, [t.text for t in tips])
        return self._known[1]

    def _recall_for(self, question: str) -> list[str]:
        if self.recall is None:
            return []
        if self._recalled[0] != question:
            self._recalled = (question, self.recall.for_question(question))
        return self._recalled[1]

    def _allowed(self, text: str, shown: str, final: bool, strict: bool = False) -> tuple[str, bool]:
        """The part of a line the player may hear under their spoiler tolerance, and whether something was held
        back. With no spoilers at all, or about an event whose spoiler class (core/data/events.yaml) is above the
        tolerance (`strict`), each sentence waits until it is complete and rated (a little later on screen, never a
        revealing half-sentence); otherwise, with hints, words stream and the line stops at the first solution."""
        if self.spoiler_limit >= SOLUTION:
            return text, False
        if self.spoiler_limit > NONE and not strict:
            return (shown, True) if rate(text) > self.spoiler_limit else (text, False)
        ends = sentence_ends(text)
        if final and text.strip() and (not ends or ends[-1] < len(text.rstrip())):
            ends.append(len(text))
        start = 0
        for end in ends:
            if rate(text[start:end]) > self.spoiler_limit:
                return text[:start].strip(), True
            start = end
        return text[:start].strip(), False

    def say(self, job: Job, guess: _Guess | None = None) -> Utterance:
        """Generate one line, streaming visible pieces to on_token; blocks this (worker) thread. With `guess`, the
        line answers the recogniser's guess at a question: its pieces wait for the question (`_Guess`), and it
        stops, unsaid (not `finished`), when the guess is dropped."""
        req = job.request
        assert req is not None
        trigger = req.trigger if req.events else "question"  # a guess has no event yet
        utt = Utterance(t=job.t, event_ids=[e.id for e in req.events], trigger=trigger, backend=self.backend.label)
        utt.queue_latency = time.perf_counter() - req.wall
        utt.hold_latency = None if req.released is None else req.released - req.wall
        self._interrupt.clear()
        self._speaking_priority = max((e.priority for e in req.events), default=0)
        emit = self.on_token
        if guess is not None:
            utt.guessed = True

            def emit(u: Utterance, piece: str) -> None:
                guess.pass_on(u, piece, self.on_token, self.on_draft)

        raw, shown = "", ""
        strict = any(spoiler_level(e.type) > self.spoiler_limit for e in req.events)
        sentences = self.persona.max_sentences + (1 if req.question else 0)
        words = self.persona.max_words + (15 if req.question else 0)
        tokens = self.max_tokens + (QUESTION_EXTRA_TOKENS if req.question else 0)
        # The player waits for the line's first words: the model takes llm.answer_threads until they are out.
        hurried = True
        self.backend.hurry(True)
        lines: list[str] = []
        if req.question is None:
            self.backend.avoid_openings([o for o in (_opening(line) for line in self.said) if o])
            while self.recent and self.recent[0][0] < job.t - REPEAT_WINDOW_S:
                self.recent.popleft()
            examples = [line for group in self.persona.examples.values() for line in group]
            lines = [line for _, line in self.recent] + examples
        self.backend.avoid_repeating(lines, barred_phrases(self.persona.language))
        if self.persona.language in OWN_SCRIPT_LANGUAGES:
            self.backend.start_in_own_script()
        try:
            for piece in self.backend.stream(
                self.messages_for(job, utt), tokens, self.temperature, stop=["\n\n", "GAME STATE"]
            ):
                if self._interrupt.is_set():
                    utt.interrupted = True
                    break
                stop = guess is not None and (guess.dropped or self._abort_prefetch.is_set())
                if stop and guess is not None and guess.drop("something else was asked of the model"):
                    return utt  # the player went on, or asked something else: never said
                if not raw:
                    utt.prompt_new = self.backend.prompt_new
                raw += piece
                cleaned = clean_line(raw, self.persona.name, sentences, words)
                if self.spoiler_limit < SOLUTION:
                    allowed, blocked = self._allowed(cleaned, shown, line_complete(raw, sentences, words), strict)
                    if blocked:
                        utt.withheld = cleaned[len(allowed) :].strip()
                        break
                    cleaned = allowed
                early = len(cleaned) < MIN_VISIBLE_CHARS and not cleaned.endswith((",", ".", "!", "?"))
                if not shown and early and not line_complete(raw, sentences, words):
                    continue
                if cleaned.startswith(shown) and len(cleaned) > len(shown):
                    delta = cleaned[len(shown) :]
                    if utt.first_token_latency is None:
                        utt.first_token_latency = time.perf_counter() - req.wall
                    shown = cleaned
                    emit(utt, delta)
                    if hurried and first_words(shown):
                        self.backend.hurry(False)
                        hurried = False
                if line_complete(raw, sentences, words):
                    break
        except Exception as exc:  # any backend failure costs this one line, never the session
            if guess is not None:
                if not guess.settle(utt, self.on_token, 0.0):
                    return utt  # the question, when it comes, is asked again and reports it
                req = _answered(utt, guess)
            utt.text = clean_line(raw, self.persona.name, sentences, words)
            utt.total_latency = time.perf_counter() - req.wall
            utt.error = (
                exc.message if isinstance(exc, KibitzError) else _explain(exc, f"The model {self.backend.label}")
            )
            log.warning("The companion's line for %s failed: %s", req.trigger, utt.error)
            self.on_error(utt, utt.error)
            return utt
        finally:
            if hurried:
                self.backend.hurry(False)
        # An interrupted line ends where the player stopped seeing it, a withheld one where it was cut.
        if utt.interrupted or utt.withheld:
            utt.text = shown.strip()
        else:
            utt.text = clean_line(raw, self.persona.name, sentences, words)
            if self.spoiler_limit < SOLUTION:
                whole = utt.text
                utt.text, blocked = self._allowed(whole, shown, final=True, strict=strict)
                utt.withheld = whole[len(utt.text) :].strip() if blocked else ""
            if shown and utt.text.startswith(shown) and len(utt.text) > len(shown):
                emit(utt, utt.text[len(shown) :])  # the held-back last sentence, now cleared
        if not utt.text and req.question is not None and utt.withheld:
            utt.text = fallback_line("no_spoilers", self.persona.language)
        if utt.first_token_latency is None and utt.text:
            utt.first_token_latency = time.perf_counter() - req.wall
            emit(utt, utt.text)
        if guess is not None:
            if not guess.settle(utt, self.on_token, GUESS_WAIT_S):
                return utt
            req = _answered(utt, guess)
        utt.total_latency = time.perf_counter() - req.wall
        utt.finished = True
        if utt.text:  # a line interrupted before a word was shown was never said
            self.said.append(utt.text)
            self.recent.append((job.t, utt.text))
            self._lines += 1
            self.on_done(utt)
        return utt

    def _run(self) -> None:
        while (job := self.jobs.get()) is not None:
            if job.request is not None:
                self._finish(self._line(job))
                continue
            utt = None
            try:
                if job.heard is not None and job.heard.complete:
                    utt = self._answer_guess(job, job.heard)
                elif job.heard is not None:
                    self._warm_question(job, job.heard)
                elif self.jobs.empty():  # a newer prefetch or a line waits: this one is stale
                    self._warm_prefix(job)
            finally:
                self._abort_prefetch.clear()
                with self._count_lock:
                    self._prefetch_jobs -= 1
                    if not self._prefetch_jobs:
                        self._prefetching.clear()
            if utt is not None:  # the player asked what the recogniser guessed: this is its answer
                self._finish(utt)

    def _line(self, job: Job, guess: _Guess | None = None) -> Utterance:
        """`say`, with anything it raises outside the model call (a sink, the prompt) costing the line only."""
        assert job.request is not None
        try:
            return self.say(job, guess)
        except Exception as exc:
            utt = Utterance(t=job.t, event_ids=[], trigger=job.request.trigger, backend=self.backend.label)
            utt.error = _explain(exc, "The companion")
            log.warning("The companion's line for %s failed: %s", job.request.trigger, utt.error)
            with contextlib.suppress(Exception):
                self.on_error(utt, utt.error)
            return utt

    def _finish(self, utt: Utterance) -> None:
        self._prefetched = self._prepared = None  # generation moved the model's cache past both
        self._speaking_priority = None
        self._busy.clear()
        self.finished.put(utt)
        with contextlib.suppress(Exception):
            self.on_free()

    def _answer_guess(self, job: Job, heard: Hearing) -> Utterance | None:
        """Write the answer to the recogniser's guess at the question (its prompt is the question's own), held
        back until the question comes; the answer if it did, None if something else came first."""
        self._prefetched = None  # the model's cache moves on to the question
        guess = job.guess
        assert guess is not None
        if not guess.dropped:
            self._abort_prefetch.clear()  # set for a job before this one (whatever drops the guess sets it again)
        start = time.perf_counter()
        request = SpeakRequest([], start, question=heard.text)
        utt = None
        try:
            if not guess.dropped:
                utt = self._line(Job(request, job.state, job.context, job.t, now=job.now), guess)
        finally:
            if self._guess is guess:
                self._guess = None
            guess.drop("its answer failed")  # nothing once confirmed; otherwise the question is asked again
            self.prefetch_log.append((start, time.perf_counter() - start))
            outcome = "said" if guess.job is not None else f"dropped: {guess.why}"
            self.guesses.append(Guessed(heard.text, outcome, start, guess.first_written))
            log.debug("The answer to the guessed question %r was %s.", heard.text, outcome)
        return utt if guess.job is not None and utt is not None else None

    def _warm_prefix(self, job: Job) -> None:
        mine = (job.state, tuple(job.context) if job.head else None)
        if self._abort_prefetch.is_set():
            if self._prefetched == mine:
                self._prefetched = None
            return
        start = time.perf_counter()
        # A failed prefetch only costs latency; the real request reports the error.
        with contextlib.suppress(Exception):
            memories = self.memories_for(job.state, refresh=True)
            if job.head:
                messages = self.prompts.question_prefix_messages(job.state, "", job.context, memories)
            else:
                messages = self.prompts.prefix_messages(job.state, memories)
            self.backend.warm(messages, abort=self._abort_prefetch, open_end=job.head)
        if self._abort_prefetch.is_set() and self._prefetched == mine:
            self._prefetched = None  # only part of it is cached: try again when idle (unless a newer one is queued)
        self.prefetch_log.append((start, time.perf_counter() - start))

    def _warm_question(self, job: Job, heard: Hearing) -> None:
        """Evaluate a question's prompt as far as it is heard."""
        self._prefetched = None  # the model's cache moves on to the question
        if self._abort_prefetch.is_set() or not self.jobs.empty():
            return
        start = time.perf_counter()
        with contextlib.suppress(Exception):  # costs latency only: the question itself reports any error
            memories = self.memories_for(job.state)
            messages = self.prompts.question_prefix_messages(job.state, heard.text, job.context, memories, job.now)
            self.backend.hurry(True)  # the player is asking: the answer they will wait for starts with this prompt
            try:
                self.backend.warm(messages, abort=self._abort_prefetch, open_end=True)
            finally:
                self.backend.hurry(False)
        self.prefetch_log.append((start, time.perf_counter() - start))

    def stop(self, timeout: float = 30.0, close_backend: bool = True, cut: bool = False) -> None:
        """Finish the line in progress (up to timeout seconds; `cut`: stop it at its next piece, nobody is listening)
        and end the worker (and the backend, unless it is shared with something else, as in the bench)."""
        if cut:
            self._interrupt.set()
            self._abort_prefetch.set()
            self._drop_guess("the companion stopped")
        self.jobs.put(None)
        if self._thread.is_alive():
            self._thread.join(timeout)
        if close_backend:
            self.backend.close()


def _answered(utt: Utterance, guess: _Guess) -> SpeakRequest:
    """The confirmed question's request, its answer (written from the guess) timed from it as if asked then."""
    assert guess.job is not None and guess.job.request is not None
    req = guess.job.request
    utt.t, utt.event_ids, utt.trigger = guess.job.t, [e.id for e in req.events], req.trigger
    utt.hold_latency = None if req.released is None else req.released - req.wall
    utt.queue_latency = 0.0  # it was being written before the question came
    if utt.first_token_latency is not None:
        utt.first_token_latency = (guess.first_out or time.perf_counter()) - req.wall
    return req


def first_words(shown: str) -> bool:
    """An answer's first words are out: a clause or sentence has ended, or it has run to eight words (what a voice
    speaks first; kibitz.voice.sentences)."""
    return any(mark in shown for mark in ",.!?;:、。，！？") or len(shown.split()) >= 8


def _explain(exc: Exception, where: str) -> str:
    """One sentence for an unexpected failure, with its reason."""
    reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    return f"{where} failed on this line ({type(exc).__name__}{': ' + reason if reason else ''}); the next one goes on."


def _with_notes(event: Event, plain: bool = False) -> str:
    """An event's sentence, with what memory adds to it ("death number 5 in level 1-2, counting earlier ..."); `plain`:
    without its details (one of them is the line's focus, told apart)."""
    notes = event.data.get("remembered") or []
    text = (event.headline or event.summary) if plain else event.summary
    return f"{text} (From memory: {'; '.join(notes)})" if notes else text


def _opening(line: str) -> str:
    """A line's first word, without punctuation ("Oh no!" → "Oh")."""
    words = re.findall(r"[^\W\d_]+", line)
    return words[0] if words else ""
