"""The StateTracker keeps a short history of observations and runs the game's detectors over them."""

from __future__ import annotations

from collections import deque

from kibitz.core.records import Event, Observation
from kibitz.games.base import DetectorSpec
from kibitz.state.detectors import DETECTORS, Detector


class StateTracker:
    """Ring buffer over continuous observations plus debounced event detection."""

    def __init__(self, specs: list[DetectorSpec], history: int = 600, same_event_s: float = 5.0) -> None:
        self.detectors: list[Detector] = [DETECTORS.get(s.kind)(**s.params) for s in specs]
        self.history: deque[Observation] = deque(maxlen=history)
        self.same_event_s = same_event_s
        """An event of the type another detector reported less than this long ago is the same moment (a death
        seen on the death screen and in its "YOU DIED" text): reported once."""
        self._last: dict[str, tuple[float, int]] = {}

    @property
    def latest(self) -> Observation | None:
        return self.history[-1] if self.history else None

    def update(self, obs: Observation) -> list[Event]:
        """Add an observation; return the events it completes."""
        self.history.append(obs)
        events: list[Event] = []
        for i, detector in enumerate(self.detectors):
            for event in detector.update(obs):
                last = self._last.get(event.type)
                if last is not None and last[1] != i and event.t - last[0] < self.same_event_s:
                    continue
                self._last[event.type] = (event.t, i)
                events.append(event)
        return events
