"""The memory store's contract, shared by every backend: SQLite embedded (default) and PostgreSQL + pgvector
for a fleet. Backends keep rows; this module keeps the rules (validation, deferred embeddings, hybrid ranking,
export), so every backend ranks and scopes memories the same way.

Every read and write names one user and touches only that user's rows: there is no API that crosses users.

Writes are fast and durable: a memory is committed at once, and its embedding may follow later
(`embed_now=False`: the row waits as "pending" and is embedded before the next search of that user, or by a
background worker with `embed_pending`, or with `pending`, the embedder's `passages_later` and `set_vectors`).
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import numpy.typing as npt

from kibitz.core.errors import KibitzError
from kibitz.core.privacy import scrub
from kibitz.core.registry import Registry
from kibitz.memory.embed import TextEmbedder, Vectors
from kibitz.memory.records import KINDS, Hit, Memory
from kibitz.memory.topics import TopicMatch

HALF_LIFE_S = 30 * 24 * 3600.0
"""Recency halves every 30 days."""
WEIGHTS = {"similarity": 0.6, "recency": 0.15, "importance": 0.15, "topic": 0.15, "latest": 0.1}
OTHER_GAME_FACTOR = 0.5
"""A memory of another game than the one being played counts half (life facts and general ones count fully)."""
SUMMARY_ITEMS = 5
PENDING_BATCH = 64
"""Rows without an embedding taken at once (by a search, or `embed_pending`)."""
"""A topic's summary is its newest memories, at most this many."""


def default_path() -> Path:
    """$KIBITZ_MEMORY_DB, else memory/memory.sqlite in kibitz's cache folder."""
    import os

    from kibitz.models.store import cache_dir

    return Path(os.environ.get("KIBITZ_MEMORY_DB") or cache_dir() / "memory" / "memory.sqlite")


def summary_of(texts: Sequence[str]) -> str:
    """A topic's summary from its memories, newest first."""
    return "; ".join(t.rstrip(".") for t in texts[:SUMMARY_ITEMS]) + "."


@dataclass
class Candidates:
    """Memories of one user that may answer a query, as arrays (scored together, vectorised).

    Games and topics are codes into small name lists, so scoring 100,000 memories stays vectorised."""

    ids: npt.NDArray[np.int64]
    similarity: npt.NDArray[np.float32]
    updated: npt.NDArray[np.float64]
    importance: npt.NDArray[np.float64]
    game_names: list[str]
    game_codes: npt.NDArray[np.int32]
    topic_names: list[str]
    topic_codes: npt.NDArray[np.int32]

    def subset(self, keep: npt.NDArray[np.int64], similarity: npt.NDArray[np.float32]) -> Candidates:
        """These rows only, with their similarities."""
        return Candidates(
            self.ids[keep],
            similarity,
            self.updated[keep],
            self.importance[keep],
            self.game_names,
            self.game_codes[keep],
            self.topic_names,
            self.topic_codes[keep],
        )

    def join(self, other: Candidates) -> Candidates:
        g, t = len(self.game_names), len(self.topic_names)
        return Candidates(
            np.concatenate([self.ids, other.ids]),
            np.concatenate([self.similarity, other.similarity]),
            np.concatenate([self.updated, other.updated]),
            np.concatenate([self.importance, other.importance]),
            self.game_names + other.game_names,
            np.concatenate([self.game_codes, other.game_codes + g]),
            self.topic_names + other.topic_names,
            np.concatenate([self.topic_codes, other.topic_codes + t]),
        )


Ranked = list[tuple[int, float, float, float, float]]


def prior(
    c: Candidates, match: TopicMatch, game: str | None, now: float, eligible: npt.NDArray[np.bool_] | None = None
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Everything in the score but similarity: (recency, importance, topic and latest part; game factor).

    The latest part goes to the newest memory (among `eligible` ones, default all) of a topic family the query
    asks the newest of ("what did I do last time?" → the newest session), of the game being played if any."""
    recency = np.exp(-np.maximum(now - c.updated, 0.0) * (math.log(2) / HALF_LIFE_S))
    named = np.array(match.named(c.topic_names), dtype=np.float64)
    base = WEIGHTS["recency"] * recency + WEIGHTS["importance"] * c.importance + WEIGHTS["topic"] * named[c.topic_codes]
    factor = np.ones(len(c.ids))
    if game is not None:
        here = np.array([g in (game, "") for g in c.game_names], dtype=bool)[c.game_codes]
        factor = np.where(here, 1.0, OTHER_GAME_FACTOR)
    wanted = np.array(match.latest(c.topic_names), dtype=bool)
    if len(c.ids) and wanted.any():
        family = wanted[c.topic_codes] & (factor == 1.0)
        if eligible is not None:
            family &= eligible
        if family.any():
            rows = np.flatnonzero(family)
            base[rows[np.argmax(c.updated[rows])]] += WEIGHTS["latest"]
    return base, factor


def rank(c: Candidates, match: TopicMatch, game: str | None, k: int, now: float) -> Ranked:
    """The k best candidates: (id, score, similarity, recency, topic match), best first.

    score = 0.6 similarity + 0.15 recency (30-day half-life) + 0.15 importance + 0.15 × how much the query names
    the memory's topic (memory.topics) + 0.1 for the newest of a family the query asks the newest of; halved for
    a memory of another game than `game`."""
    if not len(c.ids):
        return []
    base, factor = prior(c, match, game, now)
    score = (WEIGHTS["similarity"] * c.similarity + base) * factor
    k = min(k, len(score))
    top = np.argpartition(-score, k - 1)[:k]
    top = top[np.argsort(-score[top], kind="stable")]
    recency = np.exp(-np.maximum(now - c.updated[top], 0.0) * (math.log(2) / HALF_LIFE_S))
    named = match.named(c.topic_names)
    return [
        (int(c.ids[i]), float(score[i]), float(c.similarity[i]), float(r), named[c.topic_codes[i]])
        for i, r in zip(top, recency, strict=True)
    ]


MAX_TEXT_CHARS = 500
"""A memory's text is cut to this many characters: a pasted wall of text is not a memory, and a note must stay a
few tokens of the prompt."""


def check(memory: Memory) -> None:
    """Refuse a memory that cannot be stored, and make the text fit to keep: personal data out (core.privacy), at
    most MAX_TEXT_CHARS."""
    memory.text = scrub(memory.text)
    if len(memory.text) > MAX_TEXT_CHARS:
        memory.text = memory.text[: MAX_TEXT_CHARS - 1].rstrip() + "…"
    if not memory.user:
        raise KibitzError("A memory needs a user; pass --user NAME.")
    if memory.kind not in KINDS:
        raise KibitzError(f"Unknown memory kind {memory.kind!r}; use one of: {', '.join(KINDS)}.")
    if not memory.text.strip():
        raise KibitzError("A memory needs some text.")


class MemoryStore(ABC):
    """What kibitz remembers, per user and game. Subclasses store rows; see the module docstring for the rules."""

    def __init__(self, location: str, embedder: TextEmbedder) -> None:
        self.location = location
        """Where the memories are (a file path, or a server URL without its password), for messages."""
        self.embedder = embedder

    # --- writing -----------------------------------------------------------------------------------------
    def remember(
        self, memory: Memory, now: float | None = None, vector: Vectors | None = None, embed_now: bool = True
    ) -> Memory:
        """Store a memory, or update the one that says the same thing (same user, game, topic and normalised
        text); returns it with its id. `vector` is the text's embedding when the caller has it already; with
        `embed_now=False` the embedding is left for later (the write then takes well under a millisecond)."""
        check(memory)
        now = time.time() if now is None else now
        if vector is None and embed_now:
            vector = self.embedder.passages([memory.text])[0]
        return self._upsert(memory, None if vector is None else np.asarray(vector, np.float32), now)

    def replace(self, memory: Memory, now: float | None = None, embed_now: bool = True) -> Memory:
        """Store a memory that supersedes everything its topic said before (a changed preference: "talk less"
        after "talk more")."""
        check(memory)
        now = time.time() if now is None else now
        vector = self.embedder.passages([memory.text])[0] if embed_now else None
        # One transaction: a kill between the delete and the write must not lose both.
        return self._upsert(memory, None if vector is None else np.asarray(vector, np.float32), now, supersede=True)

    def load(self, memories: list[Memory], vectors: Vectors, now: float | None = None) -> None:
        """Add many new memories at once with their embeddings, in one transaction (imports, benchmarks)."""
        for m in memories:
            check(m)
        self._load(memories, np.asarray(vectors, np.float32), time.time() if now is None else now)

    def embed_pending(self, user: str, limit: int = PENDING_BATCH) -> int:
        """Embed up to `limit` of the user's memories written without an embedding; returns how many."""
        pending = self.pending(user, limit)
        if pending:
            self.set_vectors(user, pending, self.embedder.passages([text for _, text in pending]))
        return len(pending)

    def pending(self, user: str, limit: int = PENDING_BATCH) -> list[tuple[int, str]]:
        """Up to `limit` of the user's memories written without an embedding, as (id, text)."""
        return self._pending(user, limit)

    def set_vectors(self, user: str, rows: list[tuple[int, str]], vectors: Vectors) -> int:
        """Store the embeddings of (id, text) rows from `pending`, made elsewhere in the meantime: a row whose text
        changed since (a tally counted on) keeps waiting for the embedding of its new text. Returns how many
        were stored."""
        if not rows:
            return 0
        return self._set_vectors(user, rows, np.asarray(vectors, np.float32))

    # --- reading -----------------------------------------------------------------------------------------
    def prepare(self, user: str) -> None:  # noqa: B027 (a server-side store has nothing to load)
        """Load what searching the user's memories needs (an index in RAM), ahead of their first search."""

    def search(self, user: str, query: str, game: str | None = None, k: int = 5, now: float | None = None) -> list[Hit]:
        """The user's k best memories for a query: similarity, recency, importance and topic match combined;
        memories of another game than the one being played count half."""
        pending = self.pending(user)  # written before this search: it must find them (a fact, then a question)
        qvec, vectors = self.embedder.query_and_passages(query, [text for _, text in pending])
        stored = self.set_vectors(user, pending, vectors)
        if len(pending) == PENDING_BATCH or stored < len(pending):  # more than a batch, or a text changed meanwhile
            while self.embed_pending(user):
                pass
        now = time.time() if now is None else now
        match = TopicMatch(query, qvec, self.embedder)
        ranked = rank(self._candidates(user, qvec, match, game, now), match, game, k, now)
        by_id = {m.id: m for m in self._by_ids(user, [r[0] for r in ranked])}
        return [Hit(by_id[i], score, sim, rec, top) for i, score, sim, rec, top in ranked if i in by_id]

    def export(self, user: str) -> dict[str, Any]:
        """Everything kept about a user, as plain JSON-able data."""
        return {
            "user": user,
            "memories": [m.to_json() for m in self.memories(user)],
            "topics": self.topics(user),
            "profile": self.profile(user),
        }

    def forget(self, user: str, memory_id: int | None = None, game: str | None = None, everything: bool = False) -> int:
        """Delete one memory, a game's memories, or everything about a user (profile included); returns how many
        memories were deleted. Only ever the given user's: an id of another user's memory deletes nothing."""
        if memory_id is None and game is None and not everything:
            raise KibitzError("Say what to forget: --id N, --game NAME or --all.")
        return self._forget(user, memory_id, game)

    # --- what a backend provides ---------------------------------------------------------------------------
    @abstractmethod
    def _upsert(self, memory: Memory, vector: Vectors | None, now: float, supersede: bool = False) -> Memory:
        """Insert or update (by user, game, topic, normalised text) in one transaction, rebuilding the topic's
        summary; keep the higher importance and the first creation time. With `supersede`, the same transaction
        first deletes the topic's memories that say something else."""

    @abstractmethod
    def _load(self, memories: list[Memory], vectors: Vectors, now: float) -> None: ...

    @abstractmethod
    def _pending(self, user: str, limit: int) -> list[tuple[int, str]]:
        """(id, text) of the user's memories that have no embedding yet."""

    @abstractmethod
    def _set_vectors(self, user: str, rows: list[tuple[int, str]], vectors: Vectors) -> int: ...

    @abstractmethod
    def _candidates(self, user: str, query: Vectors, match: TopicMatch, game: str | None, now: float) -> Candidates:
        """The user's memories that may rank in the top 5 for this query vector (and the topics it names), with
        their similarities: all of them, or a shortlist that holds the best ones (see `rank` for the score)."""

    @abstractmethod
    def _by_ids(self, user: str, ids: list[int]) -> list[Memory]: ...

    @abstractmethod
    def _forget(self, user: str, memory_id: int | None, game: str | None) -> int:
        """Delete by id, by game, or (both None) everything about the user, profile included."""

    @abstractmethod
    def memories(self, user: str, game: str | None = None) -> list[Memory]:
        """The user's memories (of one game), ordered by game, topic, time."""

    @abstractmethod
    def topics(self, user: str, game: str | None = None) -> list[dict[str, Any]]:
        """The user's topic index: dicts with game, topic, summary, updated; ordered by game, topic."""

    @abstractmethod
    def count(self, user: str) -> int: ...

    @abstractmethod
    def profile(self, user: str) -> dict[str, str]: ...

    @abstractmethod
    def set_profile(self, user: str, key: str, value: str) -> None: ...

    # --- access tokens of `kibitz serve` (only their SHA-256 digests are kept) ----------------------------
    @abstractmethod
    def add_token(self, digest: str, user: str, scope: str) -> None:
        """Keep a token's digest: it belongs to `user`, with `scope` (player: read and write; overlay: read)."""

    @abstractmethod
    def token_owner(self, digest: str) -> tuple[str, str] | None:
        """(user, scope) of the token with this digest, or None."""

    @abstractmethod
    def tokens(self, user: str) -> list[tuple[str, float]]:
        """(scope, created) of each of a user's tokens."""

    @abstractmethod
    def drop_tokens(self, user: str) -> int:
        """Revoke all of a user's tokens; returns how many."""

    @abstractmethod
    def users(self) -> list[str]:
        """Users with memories or a profile (for the operator; never shown to a player)."""

    @abstractmethod
    def close(self) -> None: ...


MEMORY_STORES: Registry[type[MemoryStore]] = Registry("memory store")


def open_store(where: str | Path | None, embedder: TextEmbedder | None = None) -> MemoryStore:
    """A memory store from a file path (SQLite, the default ~/.cache/kibitz/memory/memory.sqlite) or a URL:
    sqlite:///path/memory.sqlite or postgresql://user@host:5432/db (PostgreSQL with the pgvector extension)."""
    if embedder is None:
        from kibitz.memory.embed import shared_embedder

        embedder = shared_embedder()
    text = str(where) if where is not None else ""
    scheme = urlparse(text).scheme if "://" in text else ""
    if scheme in ("", "sqlite"):
        path = Path(text.removeprefix("sqlite://")) if text else default_path()
        return MEMORY_STORES.get("sqlite")(str(path), embedder)
    scheme = "postgresql" if scheme == "postgres" else scheme
    return MEMORY_STORES.get(scheme)(text, embedder)


MEMORY_STORES.register("sqlite", "kibitz.memory.sqlite:SQLiteStore", "SQLite file in WAL mode (default)")
MEMORY_STORES.register(
    "postgresql", "kibitz.memory.postgres:PostgresStore", "PostgreSQL with pgvector, for many users (kibitz[postgres])"
)
