"""The FrameSource contract and a pacing helper shared by sources that replay at a chosen rate."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterator

from kibitz.core.config import SourceConfig
from kibitz.core.records import Frame
from kibitz.core.registry import Registry
from kibitz.games.base import GameAdapter


class FrameSource(ABC):
    """Gives Frames at a chosen rate until it runs out or is closed."""

    name: str

    @abstractmethod
    def frames(self) -> Iterator[Frame]:
        """Yield frames in time order."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release devices and files."""


class Pacer:
    """Sleeps so that item i is released no earlier than i / rate seconds after start (when realtime)."""

    def __init__(self, rate: float, realtime: bool) -> None:
        self.period = 1.0 / rate
        self.realtime = realtime
        self.start = time.perf_counter()
        self.late: deque[tuple[float, float]] = deque(maxlen=200_000)
        """(perf_counter, seconds late) of each item released after its time: how far a game fell behind."""

    def wait(self, t: float) -> None:
        """Block until media time t has arrived on the wall clock."""
        if not self.realtime:
            return
        now = time.perf_counter()
        delay = self.start + t - now
        if delay > 0:
            time.sleep(delay)
        else:
            self.late.append((now, -delay))


SOURCES: Registry[type[FrameSource]] = Registry("source")


def make_source(config: SourceConfig, game: GameAdapter | None, seed: int = 0) -> FrameSource:
    """Build the configured source; the emulator source needs the game adapter."""
    cls = SOURCES.get(config.kind)
    return cls.from_config(config, game, seed)  # type: ignore[attr-defined]
