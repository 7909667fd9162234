"""The embedded store's in-RAM index: kept right write by write, and the two-stage search agrees with exact."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytest

from kibitz.memory import index as index_module
from kibitz.memory.embed import TextEmbedder, Vectors
from kibitz.memory.records import Memory
from kibitz.memory.sqlite import SQLiteStore

DIM = 32


class HashEmbedder(TextEmbedder):
    """Deterministic vectors from the text's words (so the test controls similarity without a model)."""

    name = "hash"
    dim = DIM

    def _one(self, text: str) -> Vectors:
        v = np.zeros(DIM, np.float32)
        for word in text.lower().split():
            rng = np.random.default_rng(zlib.crc32(word.encode()))
            v += rng.normal(size=DIM).astype(np.float32)
        return (v / (np.linalg.norm(v) or 1.0)).astype(np.float32)

    def passages(self, texts: list[str]) -> Vectors:  # type: ignore[override]
        return np.stack([self._one(t) for t in texts]) if texts else np.zeros((0, DIM), np.float32)

    def query(self, text: str) -> Vectors:
        return self._one(text)


WORDS = [
    "bowser",
    "goomba",
    "castle",
    "pipe",
    "coin",
    "star",
    "flower",
    "shell",
    "lava",
    "bridge",
    "key",
    "door",
    "maze",
    "boss",
    "sword",
]


def _texts(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, 4)) + f" {i}" for i in range(n)]


def _ids(store: SQLiteStore, query: str, game: str | None = None) -> list[int]:
    return [h.memory.id for h in store.search("u", query, game=game, k=5, now=2e9)]  # type: ignore[misc]


def test_writes_updates_and_deletes_keep_the_index_exact(tmp_path: Path) -> None:
    live = SQLiteStore(str(tmp_path / "a.sqlite"), HashEmbedder())
    texts = _texts(300, 0)
    live.load([Memory("u", t, f"g{i % 3}", f"t{i % 7}") for i, t in enumerate(texts)], HashEmbedder().passages(texts))
    assert _ids(live, "bowser castle")  # the index is built now; what follows changes it in place
    for i, text in enumerate(_texts(40, 1)):
        live.remember(Memory("u", text, "g1", "fresh", importance=0.9), now=1.9e9 + i, embed_now=i % 2 == 0)
    live.remember(Memory("u", texts[5], "g2", "t5", importance=1.0), now=1.95e9)  # an update
    victims = [h.memory.id for h in live.search("u", "lava bridge", k=3)]
    for memory_id in victims:
        live.forget("u", memory_id=memory_id)
    fresh = SQLiteStore(str(tmp_path / "a.sqlite"), HashEmbedder())  # built from the file, from scratch
    for query in ("bowser castle", "lava bridge", "key door maze", "coin star"):
        for game in (None, "g1"):
            assert _ids(live, query, game) == _ids(fresh, query, game)
            assert not set(victims) & set(_ids(live, query, game))


def test_two_stage_search_finds_the_exact_top_five(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    texts = _texts(3000, 2)
    vectors = HashEmbedder().passages(texts)
    memories = [Memory("u", t, f"g{i % 5}", f"t{i % 11}", importance=(i % 10) / 10) for i, t in enumerate(texts)]
    exact = SQLiteStore(str(tmp_path / "exact.sqlite"), HashEmbedder())
    exact.load(memories, vectors, now=1e9)
    assert _ids(exact, "warm up") and exact._index["u"].reduced is None  # built exact, before the patch
    monkeypatch.setattr(index_module, "TWO_STAGE_FROM", 1000)
    monkeypatch.setattr(index_module, "PCA_DIMS", 16)
    monkeypatch.setattr(index_module, "CANDIDATES", 200)
    staged = SQLiteStore(str(tmp_path / "exact.sqlite"), HashEmbedder())
    agree = 0
    queries = [" ".join(np.random.default_rng(q).choice(WORDS, 3)) for q in range(40)]
    for q in queries:
        agree += _ids(staged, q, "g1") == _ids(exact, q, "g1")
    assert staged._index["u"].reduced is not None  # the two-stage path ran
    assert agree >= 0.95 * len(queries)
