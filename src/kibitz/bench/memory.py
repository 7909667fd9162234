"""Memory speed: search latency at N memories for one user, and write latency, pinned to one core."""

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
from kibitz.memory.sqlite import SQLiteStore

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


def memory_speed_bench(memories: int = 100_000, queries: int = 200, writes: int = 100, seed: int = 0) -> dict[str, Any]:
    """Load `memories` for one user (1,000 distinct sentences embedded for real, spread over games with a
    little noise so no two vectors are equal), then time searches and writes on one core."""
    cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    if cores:
        os.sched_setaffinity(0, {min(cores)})
    try:
        return _run(memories, queries, writes, seed)
    finally:
        if cores:
            os.sched_setaffinity(0, cores)


def _run(memories: int, queries: int, writes: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    embedder = E5Small()
    base = _texts(min(1000, memories), rng)
    t0 = time.perf_counter()
    vectors = embedder.passages(base)
    embed_s = time.perf_counter() - t0
    noise = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(str(Path(tmp) / "memory.sqlite"), embedder)
        copies = -(-memories // len(base))
        t0 = time.perf_counter()
        for c in range(copies):
            count = min(len(base), memories - c * len(base))
            if count <= 0:
                break
            v = vectors[:count] + noise.normal(0, 0.01, (count, vectors.shape[1])).astype(np.float32)
            v /= np.linalg.norm(v, axis=1, keepdims=True)
            batch = [Memory("bench", base[i], f"game{c}", SUBJECTS[i % len(SUBJECTS)], "event") for i in range(count)]
            store.load(batch, v, now=1e9 + c)
        load_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        store.search("bench", "warm up", k=5)
        index_s = time.perf_counter() - t0
        search_ms = []
        for _ in range(queries):
            q = f"When did I {rng.choice(EVENTS).split()[0]} {rng.choice(SUBJECTS)}?"
            t0 = time.perf_counter()
            store.search("bench", q, game=f"game{rng.randrange(copies)}", k=5)
            search_ms.append((time.perf_counter() - t0) * 1000)
        write_ms, store_ms = [], []
        for n in range(writes):
            m = Memory("writer", f"The player said thing number {n} about {rng.choice(SUBJECTS)}.", "smb", "chat")
            t0 = time.perf_counter()
            store.remember(m)
            write_ms.append((time.perf_counter() - t0) * 1000)
            v = embedder.passages([f"Another remark about {rng.choice(SUBJECTS)} {rng.choice(DETAILS)}"])[0]
            m2 = Memory("writer", f"Another remark {n} about {rng.choice(SUBJECTS)} {rng.choice(DETAILS)}", "smb")
            t0 = time.perf_counter()
            store.remember(m2, vector=v)
            store_ms.append((time.perf_counter() - t0) * 1000)
        count = store.count("bench")
        store.close()
    return {
        "memories": int(count),
        "embed_ms_per_text_batch": embed_s / len(base) * 1000,
        "load_s": load_s,
        "index_build_s": index_s,
        "search_p50_ms": _pct(search_ms, 50),
        "search_p95_ms": _pct(search_ms, 95),
        "write_with_embedding_p50_ms": _pct(write_ms, 50),
        "write_with_embedding_p95_ms": _pct(write_ms, 95),
        "write_store_only_p50_ms": _pct(store_ms, 50),
        "write_store_only_p95_ms": _pct(store_ms, 95),
    }
