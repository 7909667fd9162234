"""Memory speed: search latency at N memories for one user, and write latency, pinned to one core; on a temporary
SQLite file, or on a PostgreSQL database (`db`, a postgresql:// URL)."""

from __future__ import annotations

import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from kibitz.memory.embed import E5Small
from kibitz.memory.records import Memory
from kibitz.memory.store import MemoryStore, open_store

USERS = ("kibitz-bench", "kibitz-bench-writer")
"""The bench's users; on a PostgreSQL database their memories are deleted before and after the run."""

SUBJECTS = (
    "Bowser",
    "the Water Temple",
    "world 4-1",
    "the final boss",
    "the ice level",
    "the dragon",
    "the maze",
    "the sniper tower",
    "the night zombies",
    "the boat race",
    "the lava castle",
    "the secret shop",
)
EVENTS = (
    "died five times to",
    "finally beat",
    "got lost in",
    "found a shortcut through",
    "ran out of time in",
    "asked for a hint about",
    "skipped",
    "spent an hour on",
    "laughed at",
    "rage-quit at",
)
DETAILS = (
    "after dark",
    "with no items",
    "on the first try",
    "using the hookshot",
    "while chatting",
    "twice",
    "with a friend watching",
    "at level three",
    "without a sword",
)


def _texts(n: int, rng: random.Random) -> list[str]:
    out = {f"The player {e} {s} {d}." for s in SUBJECTS for e in EVENTS for d in DETAILS}
    texts = sorted(out)
    rng.shuffle(texts)
    return texts[:n]


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def memory_speed_bench(
    memories: int = 100_000, queries: int = 200, writes: int = 100, seed: int = 0, db: str | None = None
) -> dict[str, Any]:
    """Load `memories` for one user (1,000 distinct sentences embedded for real, spread over games with a
    little noise so no two vectors are equal), then time searches and writes on one core (this process; a
    PostgreSQL server runs on its own cores). `db`: a postgresql:// URL, else a temporary SQLite file."""
    cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    if cores:
        os.sched_setaffinity(0, {min(cores)})
    try:
        with tempfile.TemporaryDirectory() as tmp:
            store = open_store(db or str(Path(tmp) / "memory.sqlite"), E5Small())
            try:
                for user in USERS:
                    store.forget(user, everything=True)
                return _run(store, memories, queries, writes, seed)
            finally:
                for user in USERS:
                    store.forget(user, everything=True)
                store.close()
    finally:
        if cores:
            os.sched_setaffinity(0, cores)


def _run(store: MemoryStore, memories: int, queries: int, writes: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    embedder = store.embedder
    bench, writer = USERS
    base = _texts(min(1000, memories), rng)
    t0 = time.perf_counter()
    vectors = embedder.passages(base)
    embed_s = time.perf_counter() - t0
    noise = np.random.default_rng(seed)
    copies = -(-memories // len(base))
    t0 = time.perf_counter()
    for c in range(copies):
        count = min(len(base), memories - c * len(base))
        if count <= 0:
            break
        v = vectors[:count] + noise.normal(0, 0.01, (count, vectors.shape[1])).astype(np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        batch = [Memory(bench, base[i], f"game{c}", SUBJECTS[i % len(SUBJECTS)], "event") for i in range(count)]
        store.load(batch, v, now=1e9 + c)
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    store.search(bench, "warm up", k=5)
    index_s = time.perf_counter() - t0
    search_ms, query_ms = [], []
    asked = []
    for _ in range(queries):
        q = f"When did I {rng.choice(EVENTS).split()[0]} {rng.choice(SUBJECTS)}?"
        game, now = f"game{rng.randrange(copies)}", time.time()
        t0 = time.perf_counter()
        embedder.query(q)  # the query's embedding alone, to tell it apart from the store's part of a search
        query_ms.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        hits = store.search(bench, q, game=game, k=5, now=now)
        search_ms.append((time.perf_counter() - t0) * 1000)
        asked.append((q, game, now, [h.memory.id for h in hits]))
    store_part = [s - e for s, e in zip(search_ms, query_ms, strict=True)]
    write_ms, store_ms = [], []
    for n in range(writes):
        m = Memory(writer, f"The player said thing number {n} about {rng.choice(SUBJECTS)}.", "smb", "chat")
        t0 = time.perf_counter()
        store.remember(m)
        write_ms.append((time.perf_counter() - t0) * 1000)
        v = embedder.passages([f"Another remark about {rng.choice(SUBJECTS)} {rng.choice(DETAILS)}"])[0]
        m2 = Memory(writer, f"Another remark {n} about {rng.choice(SUBJECTS)} {rng.choice(DETAILS)}", "smb")
        t0 = time.perf_counter()
        store.remember(m2, vector=v)
        store_ms.append((time.perf_counter() - t0) * 1000)
    return {
        "backend": "postgresql" if store.location.startswith("postgres") else "sqlite",
        "memories": int(store.count(bench)),
        "embed_ms_per_text_batch": embed_s / len(base) * 1000,
        "load_s": load_s,
        "index_build_s": index_s,
        "search_p50_ms": _pct(search_ms, 50),
        "search_p95_ms": _pct(search_ms, 95),
        "query_embedding_p50_ms": _pct(query_ms, 50),
        "search_after_embedding_p50_ms": _pct(store_part, 50),
        "search_after_embedding_p95_ms": _pct(store_part, 95),
        "write_with_embedding_p50_ms": _pct(write_ms, 50),
        "write_with_embedding_p95_ms": _pct(write_ms, 95),
        "write_store_only_p50_ms": _pct(store_ms, 50),
        "write_store_only_p95_ms": _pct(store_ms, 95),
        "top5_equal_to_exact": _exactness(store, bench, asked[:100]),
    }


def _exactness(store: MemoryStore, user: str, asked: list[tuple[str, str, float, list[int | None]]]) -> str | None:
    """For PostgreSQL's shortlist: how many of the timed searches returned the exact top 5 (every similarity read),
    as "equal/asked"; None for SQLite (tests/test_memory_index.py checks its two-stage search)."""
    from kibitz.memory.postgres import PostgresStore

    if not isinstance(store, PostgresStore) or not asked:
        return None
    limit, store.exact_up_to = store.exact_up_to, 10**12
    try:
        equal = sum(
            [h.memory.id for h in store.search(user, q, game=game, k=5, now=now)] == ids for q, game, now, ids in asked
        )
    finally:
        store.exact_up_to = limit
    return f"{equal}/{len(asked)}"
