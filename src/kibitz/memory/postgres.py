"""The memory store for a fleet: PostgreSQL with the pgvector extension (`pip install 'kibitz[postgres]'`).

Same rules as the SQLite store (memory.store), rows in three tables: `memories` (a `vector(dim)` column, NULL
while the embedding is pending; UNIQUE (user_id, game, topic, norm)), `topics` and `profile`, created at first
use with an HNSW index (inner product: the vectors are unit length) and btree indexes that begin with user_id.

- Isolation: every statement names one user (`WHERE user_id = %s`, ids always together with the user), so no
  method can read or delete another user's rows.
- Writes: one transaction each, on one connection (autocommit off) guarded by a lock. An upsert is
  `INSERT ... ON CONFLICT (user_id, game, topic, norm) DO UPDATE` (first `created` and the higher importance
  kept) and rebuilds its topic's summary in the same transaction, under a transaction-scoped advisory lock on
  (user, game, topic) so two writers of one topic cannot leave a summary that misses the other's memory.
- Search candidates (`_candidates`), the trade-off:
  * a user with at most `EXACT_UP_TO` (2,000) memories: every similarity, computed in one SQL query (exact,
    a few ms);
  * more: a shortlist, then exact similarities for it in the same SQL query. The shortlist is the union of the
    `SHORTLIST` (100) nearest by pgvector's HNSW index among the user's memories, the 100 nearest among this
    game's and general memories (the ones the game factor does not halve; through the (user_id, game) btree
    when the game is small, so exact), the 100 nearest among memories of topics the query names (memory.topics),
    the 100 newest and the 100 most important (the recency and importance parts of the score), and the newest
    memory of a family the query asks the newest of ("last time": the latest part). HNSW is approximate,
    and a memory that is only middling on every part of the score can be missed, so this is not a proof that
    the true hybrid top 5 is inside: `kibitz bench memory --db postgresql://...` counts how often the top 5
    equals the exact one (100 of 100 at 100,000 memories). Reading every similarity of a 100,000-memory user
    instead takes ~250 ms a search; the shortlist takes ~5 ms.
  * with many users in one table the user filter makes the index search wider: `hnsw.iterative_scan =
    relaxed_order` (pgvector >= 0.8) keeps scanning until enough of this user's rows are found (up to
    `hnsw.max_scan_tuples`), and PostgreSQL's planner switches to the user's btree and exact distances when the
    user holds few rows of a large table (seen: 3,000 of 103,000 rows).
- Durability is the server's: with `synchronous_commit` on (PostgreSQL's default) a write waits for the WAL
  flush; `?options=-c%20synchronous_commit%3Doff` in the URL is SQLite-WAL-like (a server crash may lose the
  last moments of writes, never corrupts). A connection lost mid-session (a server restart) is opened again
  and the transaction run once more.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import numpy.typing as npt

from kibitz.core.errors import KibitzError
from kibitz.memory.embed import TextEmbedder, Vectors
from kibitz.memory.records import Memory, normalise
from kibitz.memory.store import SUMMARY_ITEMS, Candidates, MemoryStore, summary_of
from kibitz.memory.topics import TopicMatch

POSTGRES_HINT = "pip install 'kibitz[postgres]'"
EXACT_UP_TO = 2_000
"""Up to this many memories a user's search reads every similarity (exact)."""
SHORTLIST = 100
"""Memories each source adds to the shortlist of a larger user (see the module docstring)."""
HNSW_M, HNSW_EF_CONSTRUCTION = 16, 64
SCHEMA_LOCK = 0x6B6962_69747A
"""Advisory lock key held while the schema is created (two processes starting at once)."""

T = TypeVar("T")

_COLUMNS = "id, user_id, game, topic, kind, text, importance, created, updated, source"
_LOAD_TYPES = ["text", "text", "text", "text", "text", "text", "float8", "float8", "float8", "text", "vector"]


def _schema(dim: int) -> list[str]:
    c = 'TEXT COLLATE "C" NOT NULL'  # byte order, as SQLite sorts
    return [
        f"""CREATE TABLE IF NOT EXISTS memories (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            user_id {c}, game {c}, topic {c}, kind TEXT NOT NULL, text TEXT NOT NULL, norm TEXT NOT NULL,
            importance DOUBLE PRECISION NOT NULL, created DOUBLE PRECISION NOT NULL,
            updated DOUBLE PRECISION NOT NULL, source TEXT NOT NULL,
            vector vector({dim}),
            UNIQUE (user_id, game, topic, norm))""",
        "CREATE INDEX IF NOT EXISTS memories_user_game ON memories (user_id, game)",
        "CREATE INDEX IF NOT EXISTS memories_user_updated ON memories (user_id, updated)",
        "CREATE INDEX IF NOT EXISTS memories_user_importance ON memories (user_id, importance)",
        "CREATE INDEX IF NOT EXISTS memories_pending ON memories (user_id) WHERE vector IS NULL",
        f"""CREATE INDEX IF NOT EXISTS memories_vector ON memories USING hnsw (vector vector_ip_ops)
            WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION})""",
        f"""CREATE TABLE IF NOT EXISTS topics (
            user_id {c}, game {c}, topic {c}, summary TEXT NOT NULL, updated DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (user_id, game, topic))""",
        f"""CREATE TABLE IF NOT EXISTS profile (
            user_id {c}, key {c}, value TEXT NOT NULL, updated DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (user_id, key))""",
        f"""CREATE TABLE IF NOT EXISTS tokens (
            digest TEXT PRIMARY KEY, user_id {c}, scope TEXT NOT NULL, created DOUBLE PRECISION NOT NULL)""",
    ]


_UPSERT = """
INSERT INTO memories AS m (user_id, game, topic, kind, text, norm, importance, created, updated, source, vector)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %b)
ON CONFLICT (user_id, game, topic, norm) DO UPDATE SET
    text = EXCLUDED.text, kind = EXCLUDED.kind, importance = GREATEST(m.importance, EXCLUDED.importance),
    updated = EXCLUDED.updated, source = EXCLUDED.source, vector = EXCLUDED.vector
RETURNING id, created, importance"""


def redact(url: str) -> str:
    """The URL without its password (for messages and `location`)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return re.sub(r"password\s*=\s*\S+", "password=***", url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        netloc = f"{userinfo.split(':', 1)[0]}@{host}"
    query = "&".join(p for p in parts.query.split("&") if p and not p.lower().startswith("password="))
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


class PostgresStore(MemoryStore):
    def __init__(self, location: str, embedder: TextEmbedder) -> None:
        super().__init__(redact(location), embedder)
        try:
            import psycopg
            from pgvector.psycopg import register_vector
        except ImportError as exc:
            raise KibitzError(f"A postgresql:// memory store needs psycopg and pgvector: {POSTGRES_HINT}.") from exc
        self._psycopg = psycopg
        self._register_vector = register_vector
        self._url = location
        try:
            params = psycopg.conninfo.conninfo_to_dict(location)
        except psycopg.ProgrammingError as exc:
            raise KibitzError(
                f"The memory store URL {self.location} is not valid; use postgresql://user@host:5432/database."
            ) from exc
        self._password = str(params.get("password") or "")
        self._connect_args: dict[str, Any] = {} if "connect_timeout" in params else {"connect_timeout": 10}
        self._lock = threading.RLock()
        self._db: Any = None
        self.exact_up_to = EXACT_UP_TO
        self.shortlist = SHORTLIST
        """Rows per shortlist source; also the connection's hnsw.ef_search (read when connecting)."""
        with self._lock:
            self._connect(create=True)

    # --- connection ----------------------------------------------------------------------------------------
    def _connect(self, create: bool = False) -> Any:
        psycopg = self._psycopg
        try:
            db = psycopg.connect(self._url, autocommit=False, **self._connect_args)
        except psycopg.Error as exc:
            raise self._explain_connect(exc) from exc
        try:
            with db.transaction():
                if create:
                    self._create_schema(db)
                version = db.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
            if version is None:
                raise KibitzError(self._no_extension())
            self._register_vector(db)
            with db.transaction():
                # Session settings for the HNSW search (the shortlist needs SHORTLIST rows of one user back).
                db.execute(f"SET hnsw.ef_search = {max(40, min(1000, self.shortlist))}")
                if _at_least(version[0], (0, 8)):
                    db.execute("SET hnsw.iterative_scan = relaxed_order")
        except BaseException:
            db.close()
            raise
        self._db = db
        return db

    def _create_schema(self, db: Any) -> None:
        errors = self._psycopg.errors
        tables = db.execute(
            "SELECT to_regclass('memories') IS NOT NULL AND to_regclass('topics') IS NOT NULL"
            " AND to_regclass('profile') IS NOT NULL AND to_regclass('tokens') IS NOT NULL,"
            " EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'vector')"
        ).fetchone()
        if not (tables[0] and tables[1]):  # a role that may only read and write needs no CREATE privilege
            db.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            try:
                db.execute("CREATE EXTENSION IF NOT EXISTS vector")
            except (errors.FeatureNotSupported, errors.UndefinedFile) as exc:
                raise KibitzError(self._no_extension()) from exc
            except errors.InsufficientPrivilege as exc:
                raise KibitzError(
                    f"The memory store at {self.location} needs the pgvector extension and this user may not"
                    " create it; ask the database owner to run CREATE EXTENSION vector; in that database."
                ) from exc
            try:
                for statement in _schema(self.embedder.dim):
                    db.execute(statement)
            except errors.InsufficientPrivilege as exc:
                raise KibitzError(
                    f"The memory store at {self.location} has no memory tables and this user may not create"
                    " them; grant it CREATE on the schema, or let its owner start kibitz once."
                ) from exc
        row = db.execute(
            "SELECT atttypmod FROM pg_attribute WHERE attrelid = 'memories'::regclass AND attname = 'vector'"
        ).fetchone()
        if row is not None and row[0] > 0 and row[0] != self.embedder.dim:
            raise KibitzError(
                f"The memory store at {self.location} keeps {row[0]}-dimensional embeddings but the"
                f" {self.embedder.name} embedder makes {self.embedder.dim}; use another database for it."
            )

    def _no_extension(self) -> str:
        return (
            f"The PostgreSQL server at {self.location} has no pgvector extension; install pgvector on the server"
            " (e.g. the postgresql-NN-pgvector package), then run CREATE EXTENSION vector; in that database."
        )

    def _explain_connect(self, exc: Exception) -> KibitzError:
        reason = self._clean(str(exc))
        low = reason.lower()
        where = f"PostgreSQL at {self.location}"
        if "password authentication failed" in low or "no password supplied" in low or "authentication" in low:
            return KibitzError(f"{where} refused the login; check the user and password (or PGPASSWORD, ~/.pgpass).")
        if "database" in low and "does not exist" in low:
            return KibitzError(f"The database named in {self.location} does not exist; create it (createdb NAME).")
        if "role" in low and "does not exist" in low:
            return KibitzError(f"{where} has no such user; create the role or fix the user in the URL.")
        first = reason.strip().splitlines()[-1] if reason.strip() else type(exc).__name__
        return KibitzError(f"{where} cannot be reached ({first.strip()}); start the server or fix the host and port.")

    def _clean(self, text: str) -> str:
        if self._password:
            text = text.replace(self._password, "***")
        return text

    def _run(self, body: Callable[[Any], T]) -> T:
        """`body(connection)` in one transaction, under the lock; database errors become one-sentence
        KibitzErrors. A lost connection (a server restart) is opened again and the body run once more: every
        body is safe to repeat (upserts, deletes by key, reads)."""
        psycopg = self._psycopg
        with self._lock:
            for attempt in (1, 2):
                db = self._db
                if db is None or db.closed or db.broken:
                    self._db = None
                    db = self._connect()
                try:
                    with db.transaction():
                        return body(db)
                except psycopg.OperationalError as exc:
                    if not (db.broken or db.closed) or attempt == 2:
                        raise self._failed(exc) from exc
                    self._db = None
                    with suppress(psycopg.Error):
                        db.close()
                except psycopg.Error as exc:
                    raise self._failed(exc) from exc
        raise AssertionError("unreachable")

    def _failed(self, exc: Exception) -> KibitzError:
        reason = " ".join(self._clean(str(exc)).split())
        return KibitzError(f"The memory store at {self.location} failed ({reason}); check the server and try again.")

    # --- writing -----------------------------------------------------------------------------------------
    def _upsert(self, memory: Memory, vector: Vectors | None, now: float, supersede: bool = False) -> Memory:
        norm = normalise(memory.text)
        blob = None if vector is None else np.asarray(vector, np.float32)

        def body(db: Any) -> tuple[Any, ...]:
            _lock_topic(db, memory.user, memory.game, memory.topic)
            if supersede:
                db.execute(
                    "DELETE FROM memories WHERE user_id = %s AND game = %s AND topic = %s AND norm <> %s",
                    (memory.user, memory.game, memory.topic, norm),
                )
            row = db.execute(_UPSERT, (*_columns(memory, norm, now, now), blob)).fetchone()
            _summarise(db, memory.user, memory.game, memory.topic, now)
            return tuple(row)

        memory.id, created, importance = self._run(body)
        memory.created, memory.importance, memory.updated = float(created), float(importance), now
        return memory

    def _load(self, memories: list[Memory], vectors: Vectors, now: float) -> None:
        def body(db: Any) -> None:
            db.execute(
                "CREATE TEMPORARY TABLE memories_load (user_id TEXT, game TEXT, topic TEXT, kind TEXT, text TEXT,"
                " norm TEXT, importance FLOAT8, created FLOAT8, updated FLOAT8, source TEXT,"
                f" vector vector({self.embedder.dim}), ord BIGSERIAL) ON COMMIT DROP"
            )
            with (
                db.cursor() as cur,
                cur.copy(
                    "COPY memories_load (user_id, game, topic, kind, text, norm, importance, created, updated,"
                    " source, vector) FROM STDIN WITH (FORMAT BINARY)"
                ) as copy,
            ):
                copy.set_types(_LOAD_TYPES)
                for m, v in zip(memories, vectors, strict=True):
                    copy.write_row(
                        (*_columns(m, normalise(m.text), m.created or now, m.updated or now), np.asarray(v, np.float32))
                    )
            db.execute(
                "INSERT INTO memories (user_id, game, topic, kind, text, norm, importance, created, updated, source,"
                " vector) SELECT user_id, game, topic, kind, text, norm, importance, created, updated, source, vector"
                " FROM memories_load ORDER BY ord ON CONFLICT (user_id, game, topic, norm) DO NOTHING"
            )
            for user, game, topic in sorted({(m.user, m.game, m.topic) for m in memories}):
                _lock_topic(db, user, game, topic)
                _summarise(db, user, game, topic, now)

        self._run(body)

    def _pending(self, user: str, limit: int) -> list[tuple[int, str]]:
        rows = self._run(
            lambda db: db.execute(
                "SELECT id, text FROM memories WHERE user_id = %s AND vector IS NULL ORDER BY id LIMIT %s",
                (user, limit),
            ).fetchall()
        )
        return [(int(i), str(t)) for i, t in rows]

    def _set_vectors(self, user: str, rows: list[tuple[int, str]], vectors: Vectors) -> int:
        values = [(np.asarray(v, np.float32), i, user, text) for (i, text), v in zip(rows, vectors, strict=True)]

        def body(db: Any) -> int:
            stored = 0
            with db.cursor() as cur:
                for row in values:  # a row whose text changed meanwhile (here or on another instance) keeps waiting
                    cur.execute("UPDATE memories SET vector = %b WHERE id = %s AND user_id = %s AND text = %s", row)
                    stored += cur.rowcount
            return stored

        return int(self._run(body))

    # --- reading -----------------------------------------------------------------------------------------
    def _candidates(self, user: str, query: Vectors, match: TopicMatch, game: str | None, now: float) -> Candidates:
        q = np.asarray(query, np.float32)

        def body(db: Any) -> list[tuple[Any, ...]]:
            many, topics = db.execute(
                "SELECT (SELECT count(*) FROM (SELECT 1 FROM memories WHERE user_id = %s LIMIT %s) AS s),"
                " ARRAY(SELECT DISTINCT topic FROM topics WHERE user_id = %s)",
                (user, self.exact_up_to + 1, user),
            ).fetchone()
            if many <= self.exact_up_to:
                return list(
                    db.execute(
                        "SELECT id, -(vector <#> %b), updated, importance, game, topic FROM memories"
                        " WHERE user_id = %s AND vector IS NOT NULL",
                        (q, user),
                    ).fetchall()
                )
            low = [t.lower() for t in topics]
            named = [t for t, hit in zip(topics, match.named(low), strict=True) if hit > 0]
            latest = [t for t, hit in zip(topics, match.latest(low), strict=True) if hit]
            return self._shortlist(db, user, q, named, latest, game)

        return _candidates(self._run(body))

    def _shortlist(
        self, db: Any, user: str, q: Vectors, named: list[str], latest: list[str], game: str | None
    ) -> list[tuple[Any, ...]]:
        """The union of the sources in the module docstring, with exact similarities."""
        args: dict[str, Any] = {
            "u": user,
            "q": q,
            "n": self.shortlist,
            "here": [game or "", ""],
            "named": named,
            "latest": latest,
        }
        near = (
            "SELECT id FROM memories WHERE user_id = %(u)s AND vector IS NOT NULL{}"
            " ORDER BY vector <#> %(q)b LIMIT %(n)s"
        )
        sources = [
            near.format(""),
            "SELECT id FROM memories WHERE user_id = %(u)s AND vector IS NOT NULL ORDER BY updated DESC LIMIT %(n)s",
            "SELECT id FROM memories WHERE user_id = %(u)s AND vector IS NOT NULL ORDER BY importance DESC LIMIT %(n)s",
        ]
        if game is not None:
            sources.append(near.format(" AND game = ANY(%(here)s)"))
        if named and game is not None:  # the game's rows through the btree: cheap, exact
            sources.append(near.format(" AND game = ANY(%(here)s) AND topic = ANY(%(named)s)"))
        elif named:  # through HNSW, filtered (the iterative scan reads further: ~2x the time of the others)
            sources.append(near.format(" AND topic = ANY(%(named)s)"))
        if latest:  # the newest memory of the family the query asks the newest of ("last time")
            where = " AND game = ANY(%(here)s)" if game is not None else ""
            sources.append(
                "SELECT id FROM memories WHERE user_id = %(u)s AND vector IS NOT NULL AND topic = ANY(%(latest)s)"
                f"{where} ORDER BY updated DESC LIMIT 1"
            )
        union = " UNION ".join(f"({s})" for s in sources)
        return list(
            db.execute(
                "SELECT id, -(vector <#> %(q)b), updated, importance, game, topic FROM memories"
                f" WHERE user_id = %(u)s AND vector IS NOT NULL AND id IN ({union})",
                args,
            ).fetchall()
        )

    def _by_ids(self, user: str, ids: list[int]) -> list[Memory]:
        if not ids:
            return []
        rows = self._run(
            lambda db: db.execute(
                f"SELECT {_COLUMNS} FROM memories WHERE id = ANY(%s) AND user_id = %s", (list(ids), user)
            ).fetchall()
        )
        return [_memory(r) for r in rows]

    def memories(self, user: str, game: str | None = None) -> list[Memory]:
        sql, args = f"SELECT {_COLUMNS} FROM memories WHERE user_id = %s", [user]
        if game is not None:
            sql += " AND game = %s"
            args.append(game)
        rows = self._run(lambda db: db.execute(sql + " ORDER BY game, topic, updated, id", args).fetchall())
        return [_memory(r) for r in rows]

    def topics(self, user: str, game: str | None = None) -> list[dict[str, Any]]:
        sql, args = "SELECT game, topic, summary, updated FROM topics WHERE user_id = %s", [user]
        if game is not None:
            sql += " AND game = %s"
            args.append(game)
        rows = self._run(lambda db: db.execute(sql + " ORDER BY game, topic", args).fetchall())
        return [{"game": g, "topic": t, "summary": s, "updated": u} for g, t, s, u in rows]

    def count(self, user: str) -> int:
        return int(
            self._run(lambda db: db.execute("SELECT count(*) FROM memories WHERE user_id = %s", (user,)).fetchone())[0]
        )

    # --- the player's control --------------------------------------------------------------------------------
    def _forget(self, user: str, memory_id: int | None, game: str | None) -> int:
        def body(db: Any) -> int:
            if memory_id is not None:
                row = db.execute(
                    "DELETE FROM memories WHERE id = %s AND user_id = %s RETURNING game, topic, updated",
                    (memory_id, user),
                ).fetchone()
                if row is None:
                    return 0
                _lock_topic(db, user, row[0], row[1])
                _summarise(db, user, row[0], row[1], row[2])
                return 1
            if game is not None:
                n = db.execute("DELETE FROM memories WHERE user_id = %s AND game = %s", (user, game)).rowcount
                db.execute("DELETE FROM topics WHERE user_id = %s AND game = %s", (user, game))
                return int(n)
            n = db.execute("DELETE FROM memories WHERE user_id = %s", (user,)).rowcount
            db.execute("DELETE FROM topics WHERE user_id = %s", (user,))
            db.execute("DELETE FROM profile WHERE user_id = %s", (user,))
            return int(n)

        return self._run(body)

    def profile(self, user: str) -> dict[str, str]:
        rows = self._run(lambda db: db.execute("SELECT key, value FROM profile WHERE user_id = %s", (user,)).fetchall())
        return {k: v for k, v in rows}

    def set_profile(self, user: str, key: str, value: str) -> None:
        self._run(
            lambda db: db.execute(
                "INSERT INTO profile (user_id, key, value, updated) VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (user_id, key) DO UPDATE SET value = EXCLUDED.value, updated = EXCLUDED.updated",
                (user, key, value, time.time()),
            )
        )

    def add_token(self, digest: str, user: str, scope: str) -> None:
        self._run(
            lambda db: db.execute(
                "INSERT INTO tokens (digest, user_id, scope, created) VALUES (%s, %s, %s, %s)",
                (digest, user, scope, time.time()),
            )
        )

    def token_owner(self, digest: str) -> tuple[str, str] | None:
        row = self._run(
            lambda db: db.execute("SELECT user_id, scope FROM tokens WHERE digest = %s", (digest,)).fetchone()
        )
        return None if row is None else (row[0], row[1])

    def tokens(self, user: str) -> list[tuple[str, float]]:
        rows = self._run(
            lambda db: db.execute(
                "SELECT scope, created FROM tokens WHERE user_id = %s ORDER BY created", (user,)
            ).fetchall()
        )
        return [(r[0], r[1]) for r in rows]

    def drop_tokens(self, user: str) -> int:
        return int(self._run(lambda db: db.execute("DELETE FROM tokens WHERE user_id = %s", (user,)).rowcount))

    def users(self) -> list[str]:
        rows = self._run(
            lambda db: db.execute(
                "SELECT user_id FROM memories UNION SELECT user_id FROM profile ORDER BY 1"
            ).fetchall()
        )
        return [r[0] for r in rows]

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


def _lock_topic(db: Any, user: str, game: str, topic: str) -> None:
    """Serialise the writers of one (user, game, topic) until the transaction ends, so the summary that the
    last one writes has seen every memory."""
    db.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"{user}\x1f{game}\x1f{topic}",))


def _summarise(db: Any, user: str, game: str, topic: str, now: float) -> None:
    rows = db.execute(
        "SELECT text FROM memories WHERE user_id = %s AND game = %s AND topic = %s"
        " ORDER BY updated DESC, id DESC LIMIT %s",
        (user, game, topic, SUMMARY_ITEMS),
    ).fetchall()
    if not rows:
        db.execute("DELETE FROM topics WHERE user_id = %s AND game = %s AND topic = %s", (user, game, topic))
        return
    db.execute(
        "INSERT INTO topics (user_id, game, topic, summary, updated) VALUES (%s, %s, %s, %s, %s)"
        " ON CONFLICT (user_id, game, topic) DO UPDATE SET summary = EXCLUDED.summary, updated = EXCLUDED.updated",
        (user, game, topic, summary_of([r[0] for r in rows]), now),
    )


def _candidates(rows: list[tuple[Any, ...]]) -> Candidates:
    game_names, game_codes = _codes([r[4] for r in rows])
    topic_names, topic_codes = _codes([r[5].lower() for r in rows])
    return Candidates(
        np.array([r[0] for r in rows], dtype=np.int64),
        np.array([r[1] for r in rows], dtype=np.float32),
        np.array([r[2] for r in rows], dtype=np.float64),
        np.array([r[3] for r in rows], dtype=np.float64),
        game_names,
        game_codes,
        topic_names,
        topic_codes,
    )


def _codes(values: list[str]) -> tuple[list[str], npt.NDArray[np.int32]]:
    """Distinct names (sorted) and each value's code into them."""
    names = sorted(set(values))
    at = {name: n for n, name in enumerate(names)}
    return names, np.array([at[v] for v in values], dtype=np.int32)


def _columns(m: Memory, norm: str, created: float, updated: float) -> tuple[Any, ...]:
    return (m.user, m.game, m.topic, m.kind, m.text, norm, m.importance, created, updated, m.source)


def _memory(r: tuple[Any, ...]) -> Memory:
    return Memory(
        user=r[1],
        text=r[5],
        game=r[2],
        topic=r[3],
        kind=r[4],
        importance=float(r[6]),
        created=float(r[7]),
        updated=float(r[8]),
        source=r[9],
        id=int(r[0]),
    )


def _at_least(version: str, wanted: tuple[int, ...]) -> bool:
    parts = tuple(int(p) for p in re.findall(r"\d+", version)[: len(wanted)])
    return parts >= wanted
