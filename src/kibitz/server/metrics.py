"""The server's counters, served at /metrics in the Prometheus text format (version 0.0.4)."""

from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass, field

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)


@dataclass
class Histogram:
    buckets: tuple[float, ...] = LATENCY_BUCKETS
    counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    total: float = 0.0
    n: int = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value
        self.n += 1

    def lines(self, name: str) -> list[str]:
        out, running = [], 0
        for bound, count in zip((*self.buckets, float("inf")), self.counts, strict=True):
            running += count
            le = "+Inf" if bound == float("inf") else f"{bound:g}"
            out.append(f'{name}_bucket{{le="{le}"}} {running}')
        return [*out, f"{name}_sum {self.total:.6f}", f"{name}_count {self.n}"]


COUNTERS = {
    "sessions": "Sessions started.",
    "frames": "Frames perceived (built-in games and shared screens).",
    "frames_dropped": "Shared-screen frames replaced by a newer one before perception took them.",
    "events": "Events detected or reported.",
    "lines": "Lines the companion said.",
    "line_errors": "Lines that failed (model error, model busy).",
    "messages": "Messages received from clients.",
    "rejected": "Messages refused (malformed, too big, too fast, not allowed).",
    "disconnected_slow": "Clients disconnected because they did not read what was sent to them.",
}


class Metrics:
    """Thread-safe counters (sessions run on their own threads)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts = dict.fromkeys(COUNTERS, 0)
        self.first_token = Histogram()
        self.active = 0
        self.clients = 0

    def add(self, name: str, n: int = 1) -> None:
        with self.lock:
            self.counts[name] += n

    def latency(self, seconds: float) -> None:
        with self.lock:
            self.first_token.observe(seconds)

    def text(self) -> str:
        with self.lock:
            lines = [
                "# HELP kibitz_sessions_active Sessions running now.",
                "# TYPE kibitz_sessions_active gauge",
                f"kibitz_sessions_active {self.active}",
                "# HELP kibitz_clients Connected WebSocket clients.",
                "# TYPE kibitz_clients gauge",
                f"kibitz_clients {self.clients}",
            ]
            for name, meaning in COUNTERS.items():
                lines += [
                    f"# HELP kibitz_{name}_total {meaning}",
                    f"# TYPE kibitz_{name}_total counter",
                    f"kibitz_{name}_total {self.counts[name]}",
                ]
            lines += [
                "# HELP kibitz_first_token_seconds From an event to the first word of its line.",
                "# TYPE kibitz_first_token_seconds histogram",
                *self.first_token.lines("kibitz_first_token_seconds"),
            ]
        return "\n".join(lines) + "\n"
