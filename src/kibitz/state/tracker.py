"""The StateTracker keeps a short history of observations and runs the game's detectors over them."""

from __future__ import annotations

from collections import deque

from kibitz.core.records import Event, Observation
from kibitz.games.base import DetectorSpec
from kibitz.state.detectors import DETECTORS, Detector


class StateTracker:
    """Ring buffer over continuous observations plus debounced event detection."""

    def __init__(self, specs: list[DetectorSpec], history: int = 600) -> None:
        self.detectors: list[Detector] = [DETECTORS.get(s.kind)(**s.params) for s in specs]
        self.history: deque[Observation] = deque(maxlen=history)

    @property
    def latest(self) -> Observation | None:
        return self.history[-1] if self.history else None

    def update(self, obs: Observation) -> list[Event]:
        """Add an observation; return the events it completes."""
        self.history.append(obs)
        events: list[Event] = []
        for detector in self.detectors:
            events.extend(detector.update(obs))
        return events
