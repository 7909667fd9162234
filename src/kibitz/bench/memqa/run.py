"""Running the memory benchmark: players' sessions into a real store, the questions searched, answered by a model
with kibitz's memories and by the same model with the player's whole history, and the figures.

Ingestion uses only kibitz's own paths, as a live session does (memory/live.py): a MemoryWriter per session
(begin_session, observe for the starting level, on_event, on_player_text, end_session, every call with the
moment's time), and what the player says first goes through the command rules (`interpret`): a command
changes the profile and its preference memory replaces what its topic said before (`store.replace`); only a
message with no command is mined for facts. Writes defer their embeddings (`embed_now=False`), which are then
computed in batches of 64 before the questions.
"""

from __future__ import annotations

import random
import statistics
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from kibitz.bench.memqa.generate import LANGUAGES, TYPES, Player, Question, Session, generate
from kibitz.bench.memqa.score import answer_correct, supports
from kibitz.bench.memqa.world import paraphrases, question_data, world
from kibitz.bench.stacks import generate as llm_generate
from kibitz.bench.stacks import render
from kibitz.brain.llm.base import LLMBackend, Message
from kibitz.brain.prompts import PromptBuilder, quote_untrusted
from kibitz.core.errors import KibitzError
from kibitz.core.events import priority
from kibitz.core.persona import Persona, load_persona
from kibitz.core.records import Event, Observation, Provenance, Reading
from kibitz.memory.commands import Outcome, interpret
from kibitz.memory.extract import MemoryWriter
from kibitz.memory.profile import Profile
from kibitz.memory.records import Memory
from kibitz.memory.store import MemoryStore, open_store

STATE = "Between games; nothing on screen."
"""The game state both answerers are given: the questions come between sessions."""
K = 5
MAX_TOKENS = 48
CONTEXT_MARGIN = 32
"""Tokens kept free in the baseline's context besides the answer (chat-template differences, rounding)."""
EMBED_BATCH = 64

Advance = Callable[[], None]


def _noop() -> None:
    return None


# --- ingestion -----------------------------------------------------------------------------------------------


def _line(step_type: str, level: str | None, data: dict[str, Any]) -> str:
    h = question_data()["history"]
    where = h["where"].format(level=level) if level else ""
    return str(h[step_type]).format(level=data.get("level", level), where=where)


def _observation(session: Session, fields: list[str]) -> Observation:
    """What perception reads at the session's start: the level, in the game's level fields (world and stage)."""
    level = session.start_level or ""
    parts = level.split("-") if len(fields) > 1 else [level]
    values = {f: Reading(int(v) if v.isdigit() else v, Provenance.RAM) for f, v in zip(fields, parts, strict=True)}
    return Observation(0.0, 0, session.game, 1.0, "gameplay", values)


def _apply(store: MemoryStore, user: str, outcome: Outcome, now: float) -> Profile:
    """A command's effect, as PlayerMemory applies it: profile keys saved, preference memories replaced."""
    saved = outcome.profile.to_dict()
    for key in outcome.changes:
        store.set_profile(user, key, saved.get(key, ""))
    for topic, text in outcome.memories:
        memory = Memory(user, text, "", topic, "preference", 0.8, source="feedback")
        if topic == "feedback":
            store.remember(memory, now=now, embed_now=False)
        else:
            store.replace(memory, now=now, embed_now=False)
    return outcome.profile


def ingest(store: MemoryStore, player: Player, persona: Persona) -> None:
    """Replay the player's sessions through kibitz's memory, each call at the moment it happened."""
    profile = Profile.from_dict(store.profile(player.user))
    for session in player.sessions:
        spec = world()["games"][session.game]
        fields = [str(f) for f in spec["level_fields"]]
        writer = MemoryWriter(store, player.user, session.game, spec["title"], fields)
        writer.begin_session(now=session.start)
        if session.start_level and fields:
            writer.observe(_observation(session, fields))
        for step in session.steps:
            if step.kind == "event":
                summary = _line(step.type, step.level, step.data)
                event = Event(step.t - session.start, step.type, priority(step.type), summary, step.data)
                writer.on_event(event, now=step.t)
                continue
            outcome = interpret(step.text, profile, persona)
            profile = _apply(store, player.user, outcome, step.t)
            if not outcome.rules:
                writer.on_player_text(step.text, now=step.t)
        writer.end_session(now=session.end)


def embed_all(store: MemoryStore, users: Sequence[str], advance: Advance = _noop) -> int:
    """Embed every memory written without its embedding, in batches; returns how many."""
    done = 0
    for user in users:
        while n := store.embed_pending(user, limit=EMBED_BATCH):
            done += n
        advance()
    return done


# --- recall ----------------------------------------------------------------------------------------------------


@dataclass
class Recalled:
    question: Question
    texts: list[str]
    """The top-k memories' texts, best first."""
    rank: int | None
    """1-based rank of the first memory that supports the answer; None when none of the top k does."""
    ms: float
    stored: bool = True
    """A miss: whether any of the player's memories supports the answer at all (False: kibitz never wrote it
    down, or wrote something else: an extraction or tally miss, not a search miss)."""
    full_rank: int | None = None
    """A miss whose support is stored: where the best supporting memory ranks among all the player's memories."""


def support_rank(question: Question, texts: Sequence[str]) -> int | None:
    for i, text in enumerate(texts, 1):
        if supports(text, question.support):
            return i
    return None


BENCH_WORDS = "bench"
"""The questions as memory_qa_questions.yaml words them; the other sets are memory_qa_paraphrases.yaml's."""


def check_words(words: str) -> None:
    """A clear error for a set of words that does not exist."""
    if words != BENCH_WORDS and words not in paraphrases():
        sets = ", ".join([BENCH_WORDS, *paraphrases()])
        raise KibitzError(f"Unknown set of words {words!r}; use one of: {sets}.")


def asked(question: Question, words: str = BENCH_WORDS) -> str:
    """The words the question is asked in: the benchmark's, or a held-out set's."""
    return question.text if words == BENCH_WORDS else question.reworded[words]


def recall(
    store: MemoryStore, players: Sequence[Player], k: int = K, advance: Advance = _noop, words: str = BENCH_WORDS
) -> list[Recalled]:
    """Search every question as the companion would (the question's game, or none), after the player's index is
    loaded (a live session loads it at its start); each search is timed, query embedding included. `words`: ask
    each question in a held-out set's words instead."""
    out = []
    for player in players:
        store.search(player.user, "warm up", k=1, now=player.now)
        for q in player.questions:
            start = time.perf_counter()
            hits = store.search(player.user, asked(q, words), game=q.game, k=k, now=player.now)
            ms = (time.perf_counter() - start) * 1000
            texts = [h.memory.text for h in hits]
            found = Recalled(q, texts, support_rank(q, texts), ms)
            if found.rank is None:
                diagnose(store, player, found, words)
            out.append(found)
            advance()
    return out


def diagnose(store: MemoryStore, player: Player, miss: Recalled, words: str = BENCH_WORDS) -> None:
    """Why a question missed: its support was never stored, or it was and ranked below the top k (where)."""
    q = miss.question
    miss.stored = any(supports(m.text, q.support) for m in store.memories(player.user))
    if miss.stored:
        everything = store.search(player.user, asked(q, words), game=q.game, k=store.count(player.user), now=player.now)
        miss.full_rank = support_rank(q, [h.memory.text for h in everything])


# --- answers -----------------------------------------------------------------------------------------------------


def stratified(questions: Sequence[Question], n: int, seed: int = 0) -> list[Question]:
    """n questions, spread evenly over type × language (a small cell gives its share to the others)."""
    rng = random.Random(f"memqa-sample:{seed}")
    cells: dict[tuple[str, str], list[Question]] = defaultdict(list)
    for q in questions:
        cells[(q.type, q.lang)].append(q)
    for key in cells:
        rng.shuffle(cells[key])
    chosen: list[Question] = []
    keys = sorted(cells, key=lambda c: len(cells[c]))
    for i, key in enumerate(keys):
        share = (n - len(chosen)) // (len(keys) - i)
        chosen += cells[key][:share]
    return chosen


def history_lines(player: Player) -> list[str]:
    """The player's whole history as timestamped plain lines, oldest first: what the baseline is shown."""
    h = question_data()["history"]
    lines = []

    def add(t: float, text: str) -> None:
        lines.append(f"{datetime.fromtimestamp(t):%Y-%m-%d %H:%M} {text}")

    for s in player.sessions:
        where = h["where"].format(level=s.start_level) if s.start_level else ""
        add(s.start, h["start"].format(title=s.title, where=where))
        for step in s.steps:
            if step.kind == "event":
                add(step.t, _line(step.type, step.level, step.data))
            else:
                add(step.t, h["say"].format(text=quote_untrusted(step.text)))
        add(s.end, h["end"].format(minutes=max(1, round((s.end - s.start) / 60))))
    return lines


class TokenCounter:
    """Prompt tokens as the model counts them (LLMBackend.count_prompt: the embedded model's own chat template and
    tokenizer, or an estimate for a server)."""

    def __init__(self, backend: LLMBackend, n_ctx: int) -> None:
        self.backend = backend
        self.exact = getattr(backend, "llm", None) is not None
        self.n_ctx = backend.context_window if self.exact else n_ctx

    def text(self, text: str) -> int:
        return self.backend.count_tokens(text)

    def messages(self, messages: list[Message]) -> int:
        return self.backend.count_prompt(messages)


@dataclass
class Answerer:
    """Asks the model a question two ways: with kibitz's memories, and with the whole history."""

    backend: LLMBackend
    persona: Persona
    tokens: TokenCounter
    max_tokens: int = MAX_TOKENS
    temperature: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)
    _kept: dict[tuple[str, str], int] = field(default_factory=dict)
    _builders: dict[str, PromptBuilder] = field(default_factory=dict)

    def builder(self, lang: str) -> PromptBuilder:
        """The companion's prompts for a player who talks in `lang` (the persona set to answer in it)."""
        if lang not in self._builders:
            self._builders[lang] = PromptBuilder(self.persona.model_copy(update={"language": lang}))
        return self._builders[lang]

    def _ask(self, messages: list[Message]) -> dict[str, Any]:
        out = llm_generate(self.backend, messages, self.max_tokens, self.temperature, self.lock)
        return {
            "answer": out.text,
            "prompt_tokens": self.tokens.messages(messages),
            "s": out.total_s,
            "first_token_s": out.first_token_s,
        }

    def kibitz(self, q: Question, memories: Sequence[str]) -> dict[str, Any]:
        messages = self.builder(q.lang).question_messages(STATE, q.text, [], memories=list(memories))
        row = self._ask(messages)
        row["correct"] = answer_correct(row["answer"], q.accept, q.reject, q.text)
        return row

    def _baseline_messages(self, q: Question, lines: list[str], keep: int) -> list[Message]:
        user = render(
            question_data()["baseline"],
            history="\n".join(lines[len(lines) - keep :]),
            truncated=keep < len(lines),
            state=STATE,
            question=quote_untrusted(q.text),
        )
        return [{"role": "system", "content": self.builder(q.lang).system}, {"role": "user", "content": user}]

    def plan(self, player: Player, questions: Sequence[Question]) -> None:
        """How many of the newest history lines fit in the context with the longest of these questions and the
        answer; the same for every question of the player, so the history stays a cached prompt prefix."""
        lines = history_lines(player)
        limit = self.tokens.n_ctx - self.max_tokens - CONTEXT_MARGIN
        for lang in {q.lang for q in questions}:
            longest = max((q for q in questions if q.lang == lang), key=lambda q: len(q.text.encode()))
            lo, hi = 0, len(lines)
            if self.tokens.messages(self._baseline_messages(longest, lines, hi)) <= limit:
                lo = hi
            while lo < hi:  # the most lines that fit
                mid = (lo + hi + 1) // 2
                if self.tokens.messages(self._baseline_messages(longest, lines, mid)) <= limit:
                    lo = mid
                else:
                    hi = mid - 1
            self._kept[(player.user, lang)] = lo

    def baseline(self, player: Player, q: Question) -> dict[str, Any]:
        lines = history_lines(player)
        keep = self._kept[(player.user, q.lang)]
        row = self._ask(self._baseline_messages(q, lines, keep))
        row["correct"] = answer_correct(row["answer"], q.accept, q.reject, q.text)
        row["history_lines"] = len(lines)
        row["kept_lines"] = keep
        return row


# --- the whole run -----------------------------------------------------------------------------------------------


def _pct(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def _rate(flags: Sequence[bool]) -> dict[str, Any]:
    """A rate with its count and Wilson 95 % interval."""
    from kibitz.bench.stats import wilson

    hits = sum(flags)
    ci = list(wilson(hits, len(flags))) if flags else None
    return {"value": hits / len(flags) if flags else None, "n": len(flags), "hits": hits, "ci95": ci}


def _breakdown(rows: Sequence[tuple[Question, bool]]) -> dict[str, Any]:
    """A rate overall, by type, by language, by type × language and by kind."""
    out: dict[str, Any] = {"all": _rate([ok for _, ok in rows])}
    out["by_type"] = {t: _rate([ok for q, ok in rows if q.type == t]) for t in TYPES}
    out["by_lang"] = {la: _rate([ok for q, ok in rows if q.lang == la]) for la in LANGUAGES}
    out["by_type_lang"] = {
        t: {la: _rate([ok for q, ok in rows if q.type == t and q.lang == la]) for la in LANGUAGES} for t in TYPES
    }
    kinds = sorted({q.kind for q, _ in rows})
    out["by_kind"] = {k: _rate([ok for q, ok in rows if q.kind == k]) for k in kinds}
    return out


def _stack_figures(rows: list[dict[str, Any]], name: str) -> dict[str, Any]:
    pairs = [(r["q"], bool(r[name]["correct"])) for r in rows]
    seconds = [r[name]["s"] for r in rows]
    tokens = [r[name]["prompt_tokens"] for r in rows]
    return {
        "accuracy": _breakdown(pairs),
        "prompt_tokens_mean": statistics.fmean(tokens) if tokens else None,
        "prompt_tokens_p95": _pct(tokens, 95),
        "latency_mean_s": statistics.fmean(seconds) if seconds else None,
        "latency_p95_s": _pct(seconds, 95),
    }


def misses(recalled: Sequence[Recalled]) -> dict[str, Any]:
    """Recall misses by cause: never stored (extraction, tallies) or stored and ranked below the top k."""
    missed = [r for r in recalled if r.rank is None]
    by_kind: dict[str, dict[str, int]] = defaultdict(lambda: {"not_stored": 0, "ranked_lower": 0})
    for r in missed:
        by_kind[r.question.kind]["ranked_lower" if r.stored else "not_stored"] += 1
    ranks = [r.full_rank for r in missed if r.full_rank is not None]
    return {
        "n": len(missed),
        "not_stored": sum(not r.stored for r in missed),
        "ranked_lower": sum(r.stored for r in missed),
        "ranked_lower_median_rank": statistics.median(ranks) if ranks else None,
        "by_kind": dict(sorted(by_kind.items())),
    }


def run_benchmark(
    players: int = 32,
    seed: int = 0,
    answers: int = 96,
    backend: LLMBackend | None = None,
    n_ctx: int = 2048,
    persona: str = "buddy",
    progress: Any = None,
    store_path: Path | None = None,
    per_player: int = 16,
    answer_words: str = BENCH_WORDS,
) -> dict[str, Any]:
    """The whole benchmark; `backend` None (or `answers` 0) skips the answers. `progress` is a rich Progress.
    `answer_words`: the set of words the answered questions are asked in (bench, dev, test), kibitz's notes
    being that set's top 5."""
    check_words(answer_words)
    started = time.perf_counter()

    def bar(description: str, total: int) -> Advance:
        if progress is None:
            return _noop
        task = progress.add_task(description, total=total)
        return lambda: progress.advance(task)

    base = load_persona(persona)
    made = generate(players, seed, per_player)
    questions = [q for p in made for q in p.questions]
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="kibitz-memqa-") as tmp:
        store = open_store(store_path or Path(tmp) / "memory.sqlite")
        try:
            t0 = time.perf_counter()
            advance = bar("writing sessions", len(made))
            writes = 0
            for player in made:
                ingest(store, player, base)
                writes += sum(len(s.steps) for s in player.sessions)
                advance()
            timings["ingest_s"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            embedded = embed_all(store, [p.user for p in made], bar("embedding memories", len(made)))
            timings["embed_s"] = time.perf_counter() - t0
            memories = {p.user: store.count(p.user) for p in made}
            t0 = time.perf_counter()
            recalled = recall(store, made, K, bar("searching", len(questions)))
            timings["recall_s"] = time.perf_counter() - t0
            held_out = {
                words: recall(store, made, K, bar(f"searching, {words} words", len(questions)), words=words)
                for words in paraphrases()
            }
        finally:
            store.close()
    result: dict[str, Any] = {
        "config": {
            "players": players,
            "seed": seed,
            "per_player": per_player,
            "k": K,
            "persona": persona,
            "answer_words": answer_words,
        },
        "counts": {
            "players": len(made),
            "korean_players": sum(p.lang == "ko" for p in made),
            "bilingual_players": sum(p.bilingual for p in made),
            "sessions": sum(len(p.sessions) for p in made),
            "steps": writes,
            "memories": sum(memories.values()),
            "memories_per_player_mean": statistics.fmean(memories.values()),
            "embedded": embedded,
            "questions": len(questions),
            "by_type": {t: sum(q.type == t for q in questions) for t in TYPES},
            "by_lang": {la: sum(q.lang == la for q in questions) for la in LANGUAGES},
        },
        "recall": _breakdown([(r.question, r.rank is not None) for r in recalled]),
        "search_ms": {
            "p50": _pct([r.ms for r in recalled], 50),
            "p95": _pct([r.ms for r in recalled], 95),
            "mean": statistics.fmean(r.ms for r in recalled),
        },
        "misses": misses(recalled),
        "held_out": {
            words: {"recall": _breakdown([(r.question, r.rank is not None) for r in rows]), "misses": misses(rows)}
            for words, rows in held_out.items()
        },
        "questions": [
            {
                **r.question.to_json(),
                "rank": r.rank,
                "stored": r.stored,
                "full_rank": r.full_rank,
                "top": r.texts,
                "search_ms": round(r.ms, 2),
                "held_out": {
                    words: {"rank": rows[n].rank, "full_rank": rows[n].full_rank, "top": rows[n].texts}
                    for words, rows in held_out.items()
                },
            }
            for n, r in enumerate(recalled)
        ],
    }
    if backend is not None and answers > 0:
        t0 = time.perf_counter()
        asked_in = recalled
        if answer_words != BENCH_WORDS:
            asked_in = [
                replace(r, question=replace(r.question, text=asked(r.question, answer_words)))
                for r in held_out[answer_words]
            ]
        result["answers"] = answer_all(made, asked_in, backend, base, n_ctx, answers, seed, bar)
        result["answers"]["words"] = answer_words
        timings["answers_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - started
    result["timings"] = timings
    return result


def rescore(result: dict[str, Any]) -> dict[str, Any]:
    """Score a run's stored answers again with today's scorer (the answers themselves are not asked again)."""
    answers = result.get("answers")
    if not answers:
        return result
    fields = Question.__dataclass_fields__
    questions = {q["id"]: Question(**{k: q[k] for k in fields if k in q}) for q in result["questions"]}
    rows = []
    for row in answers["rows"]:
        q = questions[row["id"]]
        q = replace(q, text=asked(q, answers.get("words", BENCH_WORDS)))  # the words the answers were asked in
        for name in ("kibitz", "baseline"):
            row[name]["correct"] = answer_correct(row[name]["answer"], q.accept, q.reject, q.text)
        rows.append({"q": q, "kibitz": row["kibitz"], "baseline": row["baseline"]})
    answers["kibitz"] = _stack_figures(rows, "kibitz")
    answers["baseline"] = _stack_figures(rows, "baseline")
    return result


def answer_all(
    made: Sequence[Player],
    recalled: Sequence[Recalled],
    backend: LLMBackend,
    persona: Persona,
    n_ctx: int,
    answers: int,
    seed: int,
    bar: Callable[[str, int], Advance] | None = None,
) -> dict[str, Any]:
    """A stratified sample answered with kibitz's top memories and with the full history (the same model)."""
    bar = bar or (lambda description, total: _noop)
    by_id = {r.question.id: r for r in recalled}
    players = {p.user: p for p in made}
    sample = stratified([r.question for r in recalled], answers, seed)
    answerer = Answerer(backend, persona, TokenCounter(backend, n_ctx))
    rows: dict[str, dict[str, Any]] = {q.id: {"q": q} for q in sample}
    advance = bar("answering with kibitz's memories", len(sample))
    # Grouped by language, then player: the system prompt (and the player's history) stay a cached prefix.
    for q in sorted(sample, key=lambda q: (q.lang, q.user, q.id)):
        rows[q.id]["kibitz"] = answerer.kibitz(q, by_id[q.id].texts)
        advance()
    advance = bar("answering with the full history", len(sample))
    for user in sorted({q.user for q in sample}):
        mine = [q for q in sample if q.user == user]
        answerer.plan(players[user], mine)
        for q in sorted(mine, key=lambda q: (q.lang, q.id)):
            rows[q.id]["baseline"] = answerer.baseline(players[user], q)
            advance()
    ordered = [rows[q.id] for q in sample]
    kept = [r["baseline"]["kept_lines"] / r["baseline"]["history_lines"] for r in ordered]
    return {
        "n": len(sample),
        "model": backend.label,
        "n_ctx": answerer.tokens.n_ctx,
        "tokens_exact": answerer.tokens.exact,
        "max_tokens": answerer.max_tokens,
        "kibitz": _stack_figures(ordered, "kibitz"),
        "baseline": _stack_figures(ordered, "baseline"),
        "baseline_history": {
            "truncated": sum(k < 1 for k in kept),
            "kept_share_mean": statistics.fmean(kept) if kept else None,
            "history_lines_mean": statistics.fmean(r["baseline"]["history_lines"] for r in ordered)
            if ordered
            else None,
        },
        "rows": [
            {
                "id": r["q"].id,
                "type": r["q"].type,
                "lang": r["q"].lang,
                "kind": r["q"].kind,
                "question": r["q"].text,
                "truth": r["q"].truth,
                "recall_rank": by_id[r["q"].id].rank,
                "kibitz": r["kibitz"],
                "baseline": r["baseline"],
            }
            for r in ordered
        ],
    }
