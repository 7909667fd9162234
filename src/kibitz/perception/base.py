"""Perceivers turn frames into observations; chosen by name from a registry."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from kibitz.core.config import PerceptionConfig
from kibitz.core.records import Frame, Observation
from kibitz.core.registry import Registry
from kibitz.games.base import GameAdapter
from kibitz.perception.router import Route


class Perceiver(ABC):
    def __init__(self, game: GameAdapter | None, config: PerceptionConfig | None = None) -> None:
        self.game = game
        self.config = config or PerceptionConfig()

    @abstractmethod
    def perceive(self, frame: Frame) -> Observation:
        """What this frame shows."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Stop any background work (OCR, VLM threads)."""

    def ask(self, question: str, t: float) -> Route | None:
        """A player's question: the route it takes (None: perception has no slow path to offer)."""
        return None

    def answered(self) -> set[str]:
        """Questions whose slow-path look has come back (or failed) and may now be answered."""
        return set()

    def notes(self) -> list[dict[str, Any]]:
        """Machine-readable records (route decisions) since the last call, for the session log."""
        return []


class RamPerceiver(Perceiver):
    """Reads the game's true state carried by emulated frames (exact, sub-millisecond)."""

    def perceive(self, frame: Frame) -> Observation:
        if self.game is None:
            raise ValueError("the RAM perceiver needs a game adapter")
        return self.game.observe(frame)


class BlindPerceiver(Perceiver):
    """For frames without state until pixel perception (OCR, classifier, VLM) is configured: scene unknown."""

    def perceive(self, frame: Frame) -> Observation:
        game_id = self.game.id if self.game else None
        return Observation(t=frame.t, frame_index=frame.index, game=game_id, game_confidence=0.0, scene="unknown")


PERCEIVERS: Registry[type[Perceiver]] = Registry("perceiver")
PERCEIVERS.register("ram", RamPerceiver, "true state from an emulated game's RAM")
PERCEIVERS.register("blind", BlindPerceiver, "no understanding at all: frames pass, scene unknown")
PERCEIVERS.register(
    "pixels", "kibitz.perception.pixels:PixelPerceiver", "pixels only: HUD glyphs, game/scene recognition, VLM"
)
PERCEIVERS.register(
    "generic", "kibitz.perception.pixels:GenericPerceiver", "any screen: changes, OCR text, shared scenes, VLM"
)
