"""The embedded memory store: SQLite in WAL mode, one transaction per write, every query scoped to one user.

Search runs over the user's vectors in RAM (memory.index.UserIndex: exact, or two-stage from 20,000 memories),
kept up to date write by write.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from kibitz.core.errors import KibitzError
from kibitz.memory.embed import TextEmbedder, Vectors
from kibitz.memory.index import Row, UserIndex
from kibitz.memory.records import Memory, normalise
from kibitz.memory.store import Candidates, MemoryStore, summary_of
from kibitz.memory.topics import TopicMatch

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
    vector BLOB,
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
CREATE TABLE IF NOT EXISTS tokens (
    digest TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    scope TEXT NOT NULL,
    created REAL NOT NULL
);
"""
_INSERT = (
    "INSERT INTO memories (user, game, topic, kind, text, norm, importance, created, updated, source, vector)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


class SQLiteStore(MemoryStore):
    def __init__(self, location: str, embedder: TextEmbedder) -> None:
        super().__init__(location, embedder)
        self.path = path = Path(location)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(path, timeout=5.0, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(SCHEMA)
            _migrate(self.db)
            # Memories still waiting for their embedding, found without scanning the user's rows.
            self.db.execute("CREATE INDEX IF NOT EXISTS memories_pending ON memories (user) WHERE vector IS NULL")
        except sqlite3.OperationalError as exc:
            raise _explain(exc, path) from exc
        except sqlite3.DatabaseError as exc:
            raise KibitzError(
                f"The memory file {path} is damaged ({exc}); move it away to start a new one, or restore a backup."
            ) from exc
        except OSError as exc:
            raise KibitzError(f"The memory file {path} cannot be created ({exc.strerror}); pick another --db.") from exc
        self.db.row_factory = sqlite3.Row
        self._index: dict[str, UserIndex] = {}

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        try:
            with immediate(self.db):
                yield
        except sqlite3.OperationalError as exc:
            raise _explain(exc, self.path) from exc

    # --- writing -----------------------------------------------------------------------------------------
    def _upsert(self, memory: Memory, vector: Vectors | None, now: float, supersede: bool = False) -> Memory:
        norm = normalise(memory.text)
        blob = None if vector is None else vector.astype(np.float32).tobytes()
        superseded: list[int] = []
        with self._transaction():
            if supersede:
                superseded = [
                    r["id"]
                    for r in self.db.execute(
                        "DELETE FROM memories WHERE user=? AND game=? AND topic=? AND norm<>? RETURNING id",
                        (memory.user, memory.game, memory.topic, norm),
                    ).fetchall()
                ]
            row = self.db.execute(
                "SELECT id, created, importance FROM memories WHERE user=? AND game=? AND topic=? AND norm=?",
                (memory.user, memory.game, memory.topic, norm),
            ).fetchone()
            if row is None:
                cur = self.db.execute(
                    _INSERT,
                    (*_columns(memory, norm, now, now), blob),
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
        index = self._index.get(memory.user)
        if index is not None:
            for old in superseded:
                index.remove(old)
        if index is not None and memory.id is not None:
            if vector is None:
                index.remove(memory.id)  # back when it has its embedding
            else:
                index.put(Row(memory.id, vector, now, memory.importance, memory.game, memory.topic))
        return memory

    def _load(self, memories: list[Memory], vectors: Vectors, now: float) -> None:
        with self._transaction():
            self.db.executemany(
                _INSERT.replace("INSERT", "INSERT OR IGNORE"),
                (
                    (*_columns(m, normalise(m.text), m.created or now, m.updated or now), v.tobytes())
                    for m, v in zip(memories, vectors, strict=True)
                ),
            )
            for user, game, topic in {(m.user, m.game, m.topic) for m in memories}:
                self._summarise(user, game, topic, now)
        for user in {m.user for m in memories}:
            self._index.pop(user, None)

    def _summarise(self, user: str, game: str, topic: str, now: float) -> None:
        rows = self.db.execute(
            "SELECT text FROM memories WHERE user=? AND game=? AND topic=? ORDER BY updated DESC, id DESC LIMIT 5",
            (user, game, topic),
        ).fetchall()
        if not rows:
            self.db.execute("DELETE FROM topics WHERE user=? AND game=? AND topic=?", (user, game, topic))
            return
        summary = summary_of([r["text"] for r in rows])
        self.db.execute("INSERT OR REPLACE INTO topics VALUES (?, ?, ?, ?, ?)", (user, game, topic, summary, now))

    def _pending(self, user: str, limit: int) -> list[tuple[int, str]]:
        rows = self.db.execute("SELECT id, text FROM memories WHERE user=? AND vector IS NULL LIMIT ?", (user, limit))
        return [(r["id"], r["text"]) for r in rows]

    def _set_vectors(self, user: str, rows: list[tuple[int, str]], vectors: Vectors) -> int:
        stored: list[tuple[int, Vectors]] = []
        with self._transaction():
            for (i, text), v in zip(rows, vectors, strict=True):
                vector = np.asarray(v, np.float32)
                cursor = self.db.execute(
                    "UPDATE memories SET vector=? WHERE id=? AND user=? AND text=?", (vector.tobytes(), i, user, text)
                )
                if cursor.rowcount:
                    stored.append((i, vector))
        index = self._index.get(user)
        if index is not None and stored:
            by_id = {m.id: m for m in self._by_ids(user, [i for i, _ in stored])}
            for i, vector in stored:
                if (m := by_id.get(i)) is not None:
                    index.put(Row(i, vector, m.updated, m.importance, m.game, m.topic))
        return len(stored)

    # --- reading -----------------------------------------------------------------------------------------
    def prepare(self, user: str) -> None:
        self._user_index(user)

    def _user_index(self, user: str) -> UserIndex:
        index = self._index.get(user)
        if index is None or index.stale:
            rows = self.db.execute(
                "SELECT id, vector, game, topic, updated, importance FROM memories WHERE user=? AND vector IS NOT NULL",
                (user,),
            ).fetchall()
            dim = self.embedder.dim
            index = UserIndex.build(
                [
                    Row(
                        r["id"],
                        np.frombuffer(r["vector"], np.float32, dim),
                        r["updated"],
                        r["importance"],
                        r["game"],
                        r["topic"],
                    )
                    for r in rows
                ],
                dim,
            )
            self._index[user] = index
        return index

    def _candidates(self, user: str, query: Vectors, match: TopicMatch, game: str | None, now: float) -> Candidates:
        return self._user_index(user).candidates(query, match, game, now)

    def _by_ids(self, user: str, ids: list[int]) -> list[Memory]:
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        # "+user": still only this user's rows, but looked up by id (the planner would scan the user's rows).
        rows = self.db.execute(f"SELECT * FROM memories WHERE id IN ({marks}) AND +user=?", [*ids, user])
        return [_memory(r) for r in rows]

    def memories(self, user: str, game: str | None = None) -> list[Memory]:
        sql, args = "SELECT * FROM memories WHERE user=?", [user]
        if game is not None:
            sql += " AND game=?"
            args.append(game)
        return [_memory(r) for r in self.db.execute(sql + " ORDER BY game, topic, updated, id", args)]

    def topics(self, user: str, game: str | None = None) -> list[dict[str, Any]]:
        sql, args = "SELECT game, topic, summary, updated FROM topics WHERE user=?", [user]
        if game is not None:
            sql += " AND game=?"
            args.append(game)
        return [dict(r) for r in self.db.execute(sql + " ORDER BY game, topic", args)]

    def count(self, user: str) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM memories WHERE user=?", (user,)).fetchone()[0])

    # --- the player's control --------------------------------------------------------------------------------
    def _forget(self, user: str, memory_id: int | None, game: str | None) -> int:
        with self._transaction():
            if memory_id is not None:
                row = self.db.execute(
                    "SELECT game, topic, updated FROM memories WHERE id=? AND user=?", (memory_id, user)
                ).fetchone()
                n = self.db.execute("DELETE FROM memories WHERE id=? AND user=?", (memory_id, user)).rowcount
                if row is not None:
                    self._summarise(user, row["game"], row["topic"], row["updated"])
                    if (index := self._index.get(user)) is not None:
                        index.remove(memory_id)
            elif game is not None:
                n = self.db.execute("DELETE FROM memories WHERE user=? AND game=?", (user, game)).rowcount
                self.db.execute("DELETE FROM topics WHERE user=? AND game=?", (user, game))
            else:
                n = self.db.execute("DELETE FROM memories WHERE user=?", (user,)).rowcount
                self.db.execute("DELETE FROM topics WHERE user=?", (user,))
                self.db.execute("DELETE FROM profile WHERE user=?", (user,))
        if memory_id is None:
            self._index.pop(user, None)
        return n

    def profile(self, user: str) -> dict[str, str]:
        return {r["key"]: r["value"] for r in self.db.execute("SELECT key, value FROM profile WHERE user=?", (user,))}

    def set_profile(self, user: str, key: str, value: str) -> None:
        with self._transaction():
            self.db.execute("INSERT OR REPLACE INTO profile VALUES (?, ?, ?, ?)", (user, key, value, time.time()))

    def add_token(self, digest: str, user: str, scope: str) -> None:
        with self._transaction():
            self.db.execute("INSERT INTO tokens VALUES (?, ?, ?, ?)", (digest, user, scope, time.time()))

    def token_owner(self, digest: str) -> tuple[str, str] | None:
        row = self.db.execute("SELECT user, scope FROM tokens WHERE digest=?", (digest,)).fetchone()
        return None if row is None else (row["user"], row["scope"])

    def tokens(self, user: str) -> list[tuple[str, float]]:
        rows = self.db.execute("SELECT scope, created FROM tokens WHERE user=? ORDER BY created", (user,))
        return [(r["scope"], r["created"]) for r in rows]

    def drop_tokens(self, user: str) -> int:
        with self._transaction():
            return int(self.db.execute("DELETE FROM tokens WHERE user=?", (user,)).rowcount)

    def users(self) -> list[str]:
        rows = self.db.execute("SELECT user FROM memories UNION SELECT user FROM profile ORDER BY 1")
        return [r[0] for r in rows]

    def close(self) -> None:
        self.db.close()


@contextmanager
def immediate(db: sqlite3.Connection) -> Iterator[None]:
    """One write transaction (BEGIN IMMEDIATE): committed when the block ends, rolled back if it raises."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _migrate(db: sqlite3.Connection) -> None:
    """Files from kibitz 0.1 required an embedding on every row; rows may now wait for theirs."""
    columns = {r[1]: r[3] for r in db.execute("PRAGMA table_info(memories)")}
    if columns.get("vector"):  # NOT NULL
        create = SCHEMA.split(";")[0].replace("memories (", "memories_new (", 1)
        db.execute("BEGIN IMMEDIATE")
        db.execute(create)
        db.execute("INSERT INTO memories_new SELECT * FROM memories")
        db.execute("DROP TABLE memories")
        db.execute("ALTER TABLE memories_new RENAME TO memories")
        db.execute("CREATE INDEX IF NOT EXISTS memories_user_game ON memories (user, game)")
        db.execute("COMMIT")


def _meta(r: sqlite3.Row) -> tuple[float, float, str, str]:
    return r["updated"], r["importance"], r["game"], r["topic"]


def _columns(m: Memory, norm: str, created: float, updated: float) -> tuple[Any, ...]:
    return (m.user, m.game, m.topic, m.kind, m.text, norm, m.importance, created, updated, m.source)


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
