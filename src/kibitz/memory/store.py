"""The memory store, embedded: SQLite in WAL mode, one transaction per write, every query scoped to one user.

Memories are deduplicated by (user, game, topic, normalised text): saying the same thing again updates the
memory (its text, time and importance) instead of adding a copy. Each (user, game, topic) has a summary that is
rebuilt from its current memories on every write, so the topic index reads as the present state, not a log.
Search is hybrid: cosine similarity of multilingual embeddings, recency, importance and topic match.
"""

from __future__ import annotations

import math
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kibitz.core.errors import KibitzError
from kibitz.memory.embed import TextEmbedder, Vectors
from kibitz.memory.records import KINDS, Hit, Memory, normalise

SCHEMA = """
CREATE TABLE IF NOT EXISTS memories (
    id INTEGER PRIMARY KEY,
    user TEXT NOT NULL,
    game TEXT NOT NULL,
    topic TEXT NOT NULL,
    kind TEXT NOT NULL,
    text TEXT NOT NULL,
    norm TEXT NOT NULL,
    importance REAL NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    source TEXT NOT NULL,
    vector BLOB NOT NULL,
    UNIQUE (user, game, topic, norm)
);
CREATE INDEX IF NOT EXISTS memories_user_game ON memories (user, game);
CREATE TABLE IF NOT EXISTS topics (
    user TEXT NOT NULL,
    game TEXT NOT NULL,
    topic TEXT NOT NULL,
    summary TEXT NOT NULL,
    updated REAL NOT NULL,
    PRIMARY KEY (user, game, topic)
);
CREATE TABLE IF NOT EXISTS profile (
    user TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    updated REAL NOT NULL,
    PRIMARY KEY (user, key)
);
"""

HALF_LIFE_S = 30 * 24 * 3600.0
"""Recency halves every 30 days."""
WEIGHTS = {"similarity": 0.6, "recency": 0.15, "importance": 0.15, "topic": 0.1}
SUMMARY_ITEMS = 5


def default_path() -> Path:
    from kibitz.models.store import cache_dir

    return cache_dir() / "memory" / "memory.sqlite"


@dataclass
class _UserIndex:
    """One user's memory vectors in memory, for brute-force search (rebuilt after that user's writes).
    Games and topics are kept as codes into small name lists, so scoring 100,000 memories stays vectorised."""

    ids: np.ndarray
    vectors: Vectors
    game_names: list[str]
    game_codes: np.ndarray
    topic_names: list[str]
    topic_codes: np.ndarray
    updated: np.ndarray
    importance: np.ndarray


class MemoryStore:
    def __init__(self, path: Path, embedder: TextEmbedder) -> None:
        self.path = path
        self.embedder = embedder
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(path, timeout=5.0, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(SCHEMA)
        except sqlite3.OperationalError as exc:
            raise _explain(exc, path) from exc
        except sqlite3.DatabaseError as exc:
            raise KibitzError(
                f"The memory file {path} is damaged ({exc}); move it away to start a new one, or restore a backup."
            ) from exc
        self.db.row_factory = sqlite3.Row
        self._index: dict[str, _UserIndex] = {}

    # --- writing -----------------------------------------------------------------------------------------
    def remember(self, memory: Memory, now: float | None = None, vector: Vectors | None = None) -> Memory:
        """Store a memory, or update the one that says the same thing; returns it with its id.

        `vector` is the text's embedding when the caller has it already (embedding is most of a write's time)."""
        if not memory.user:
            raise KibitzError("A memory needs a user; pass --user NAME.")
        if memory.kind not in KINDS:
            raise KibitzError(f"Unknown memory kind {memory.kind!r}; use one of: {', '.join(KINDS)}.")
        now = time.time() if now is None else now
        norm = normalise(memory.text)
        if vector is None:
            vector = self.embedder.passages([memory.text])[0]
        blob = np.asarray(vector, dtype=np.float32).tobytes()
        try:
            with self._transaction():
                row = self.db.execute(
                    "SELECT id, created, importance FROM memories WHERE user=? AND game=? AND topic=? AND norm=?",
                    (memory.user, memory.game, memory.topic, norm),
                ).fetchone()
                if row is None:
                    cur = self.db.execute(
                        "INSERT INTO memories (user, game, topic, kind, text, norm, importance, created, updated,"
                        " source, vector) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            memory.user,
                            memory.game,
                            memory.topic,
                            memory.kind,
                            memory.text,
                            norm,
                            memory.importance,
                            now,
                            now,
                            memory.source,
                            blob,
                        ),
                    )
                    memory.id, memory.created = cur.lastrowid, now
                else:
                    memory.id, memory.created = row["id"], row["created"]
                    memory.importance = max(memory.importance, row["importance"])
                    self.db.execute(
                        "UPDATE memories SET text=?, kind=?, importance=?, updated=?, source=?, vector=? WHERE id=?",
                        (memory.text, memory.kind, memory.importance, now, memory.source, blob, memory.id),
                    )
                memory.updated = now
                self._summarise(memory.user, memory.game, memory.topic, now)
        except sqlite3.OperationalError as exc:
            raise _explain(exc, self.path) from exc
        self._index.pop(memory.user, None)
        return memory

    def load(self, memories: list[Memory], vectors: Vectors, now: float | None = None) -> None:
        """Add many new memories at once with their embeddings, in one transaction (imports, benchmarks)."""
        now = time.time() if now is None else now
        with self._transaction():
            self.db.executemany(
                "INSERT OR IGNORE INTO memories (user, game, topic, kind, text, norm, importance, created, updated,"
                " source, vector) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    (
                        m.user,
                        m.game,
                        m.topic,
                        m.kind,
                        m.text,
                        normalise(m.text),
                        m.importance,
                        m.created or now,
                        m.updated or now,
                        m.source,
                        np.asarray(v, dtype=np.float32).tobytes(),
                    )
                    for m, v in zip(memories, vectors, strict=True)
                ),
            )
            for user, game, topic in {(m.user, m.game, m.topic) for m in memories}:
                self._summarise(user, game, topic, now)
        for user in {m.user for m in memories}:
            self._index.pop(user, None)

    def _summarise(self, user: str, game: str, topic: str, now: float) -> None:
        """Rebuild the topic's summary from its current memories (newest first)."""
        rows = self.db.execute(
            "SELECT text FROM memories WHERE user=? AND game=? AND topic=? ORDER BY updated DESC, id DESC LIMIT ?",
            (user, game, topic, SUMMARY_ITEMS),
        ).fetchall()
        if not rows:
            self.db.execute("DELETE FROM topics WHERE user=? AND game=? AND topic=?", (user, game, topic))
            return
        summary = "; ".join(r["text"].rstrip(".") for r in rows) + "."
        self.db.execute("INSERT OR REPLACE INTO topics VALUES (?, ?, ?, ?, ?)", (user, game, topic, summary, now))

    def _transaction(self) -> Any:
        store = self

        class Tx:
            def __enter__(self) -> None:
                store.db.execute("BEGIN IMMEDIATE")

            def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
                store.db.execute("COMMIT" if kind is None else "ROLLBACK")

        return Tx()

    # --- reading -----------------------------------------------------------------------------------------
    def memories(self, user: str, game: str | None = None) -> list[Memory]:
        sql, args = "SELECT * FROM memories WHERE user=?", [user]
        if game is not None:
            sql += " AND game=?"
            args.append(game)
        return [_memory(r) for r in self.db.execute(sql + " ORDER BY game, topic, updated", args)]

    def topics(self, user: str, game: str | None = None) -> list[dict[str, Any]]:
        sql, args = "SELECT game, topic, summary, updated FROM topics WHERE user=?", [user]
        if game is not None:
            sql += " AND game=?"
            args.append(game)
        return [dict(r) for r in self.db.execute(sql + " ORDER BY game, topic", args)]

    def _user_index(self, user: str) -> _UserIndex:
        index = self._index.get(user)
        if index is None:
            rows = self.db.execute(
                "SELECT id, vector, game, topic, updated, importance FROM memories WHERE user=?", (user,)
            ).fetchall()
            dim = self.embedder.dim
            game_names, game_codes = np.unique([r["game"] for r in rows], return_inverse=True)
            topic_names, topic_codes = np.unique([r["topic"].lower() for r in rows], return_inverse=True)
            index = _UserIndex(
                np.array([r["id"] for r in rows], dtype=np.int64),
                np.frombuffer(b"".join(r["vector"] for r in rows), dtype=np.float32).reshape(len(rows), dim),
                [str(g) for g in game_names],
                game_codes.astype(np.int32),
                [str(t) for t in topic_names],
                topic_codes.astype(np.int32),
                np.array([r["updated"] for r in rows], dtype=np.float64),
                np.array([r["importance"] for r in rows], dtype=np.float64),
            )
            self._index[user] = index
        return index

    def search(self, user: str, query: str, game: str | None = None, k: int = 5, now: float | None = None) -> list[Hit]:
        """The user's k best memories for a query: similarity, recency, importance and topic match combined;
        memories of another game than the one being played count half."""
        index = self._user_index(user)
        if not len(index.ids):
            return []
        now = time.time() if now is None else now
        sims = index.vectors @ self.embedder.query(query)
        recency = np.exp(-np.maximum(now - index.updated, 0.0) * math.log(2) / HALF_LIFE_S)
        low = query.lower()
        named = np.array([1.0 if t != "general" and t in low else 0.0 for t in index.topic_names])
        topic = named[index.topic_codes]
        score = (
            WEIGHTS["similarity"] * sims
            + WEIGHTS["recency"] * recency
            + WEIGHTS["importance"] * index.importance
            + WEIGHTS["topic"] * topic
        )
        if game is not None:
            here = np.array([g in (game, "") for g in index.game_names])[index.game_codes]
            score = np.where(here, score, score * 0.5)
        k = min(k, len(score))
        top = np.argpartition(-score, k - 1)[:k]
        top = top[np.argsort(-score[top])]
        by_id = {m.id: m for m in self._by_ids(user, [int(index.ids[i]) for i in top])}
        return [
            Hit(by_id[int(index.ids[i])], float(score[i]), float(sims[i]), float(recency[i]), float(topic[i]))
            for i in top
            if int(index.ids[i]) in by_id
        ]

    def _by_ids(self, user: str, ids: list[int]) -> list[Memory]:
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        rows = self.db.execute(f"SELECT * FROM memories WHERE user=? AND id IN ({marks})", [user, *ids])
        return [_memory(r) for r in rows]

    # --- the player's control --------------------------------------------------------------------------------
    def forget(self, user: str, memory_id: int | None = None, game: str | None = None, everything: bool = False) -> int:
        """Delete one memory, a game's memories, or everything about a user; returns how many were deleted.
        Only ever the given user's: an id of another user's memory deletes nothing."""
        if memory_id is None and game is None and not everything:
            raise KibitzError("Say what to forget: --id N, --game NAME or --all.")
        with self._transaction():
            if memory_id is not None:
                row = self.db.execute(
                    "SELECT game, topic FROM memories WHERE id=? AND user=?", (memory_id, user)
                ).fetchone()
                n = self.db.execute("DELETE FROM memories WHERE id=? AND user=?", (memory_id, user)).rowcount
                if row is not None:
                    self._summarise(user, row["game"], row["topic"], time.time())
            elif game is not None:
                n = self.db.execute("DELETE FROM memories WHERE user=? AND game=?", (user, game)).rowcount
                self.db.execute("DELETE FROM topics WHERE user=? AND game=?", (user, game))
            else:
                n = self.db.execute("DELETE FROM memories WHERE user=?", (user,)).rowcount
                self.db.execute("DELETE FROM topics WHERE user=?", (user,))
                self.db.execute("DELETE FROM profile WHERE user=?", (user,))
        self._index.pop(user, None)
        return n

    def export(self, user: str) -> dict[str, Any]:
        """Everything kept about a user, as plain JSON-able data."""
        return {
            "user": user,
            "memories": [m.to_json() for m in self.memories(user)],
            "topics": self.topics(user),
            "profile": self.profile(user),
        }

    def profile(self, user: str) -> dict[str, str]:
        return {r["key"]: r["value"] for r in self.db.execute("SELECT key, value FROM profile WHERE user=?", (user,))}

    def set_profile(self, user: str, key: str, value: str) -> None:
        with self._transaction():
            self.db.execute("INSERT OR REPLACE INTO profile VALUES (?, ?, ?, ?)", (user, key, value, time.time()))

    def users(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT DISTINCT user FROM memories ORDER BY 1")]

    def close(self) -> None:
        self.db.close()


def _memory(row: sqlite3.Row) -> Memory:
    return Memory(
        user=row["user"],
        text=row["text"],
        game=row["game"],
        topic=row["topic"],
        kind=row["kind"],
        importance=row["importance"],
        created=row["created"],
        updated=row["updated"],
        source=row["source"],
        id=row["id"],
    )


def _explain(exc: sqlite3.OperationalError, path: Path) -> KibitzError:
    if "locked" in str(exc) or "busy" in str(exc):
        return KibitzError(
            f"The memory file {path} is locked by another program (another kibitz?); close it and try again."
        )
    return KibitzError(f"The memory file {path} cannot be used ({exc}); check its folder's permissions.")
