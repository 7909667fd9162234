"""Choose, per moment, between the fast path (HUD, classifier, events → small LLM) and the slow path (VLM).

The slow path sees the picture itself but costs seconds; the fast path is what runs by default. The router
takes the slow path for novelty (a game nothing is known about), uncertainty (a scene the classifier is
unsure of), a new scene, or a question about what is on screen — and only when the VLM is expected to
answer within the latency budget and has not just been asked. Every decision carries its reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from kibitz.perception.classifier import Recognition

VISUAL_QUESTION = re.compile(
    r"\b(see|seeing|look|looks|looking|screen|picture|image|show|shown|showing|colou?r|where|read|says?|"
    r"what is (this|that)|what's (this|that|happening|going on)|happening|who is|which one)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Route:
    path: str
    """fast or slow."""
    reason: str
    t: float
    question: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"kind": "route", "t": round(self.t, 3), "path": self.path, "reason": self.reason}


class Router:
    def __init__(
        self,
        vlm_available: bool,
        budget_s: float = 3.0,
        min_interval_s: float = 10.0,
        expected_latency_s: float = 2.0,
        unsure_below: float = 0.5,
    ) -> None:
        self.vlm_available = vlm_available
        self.budget_s = budget_s
        self.min_interval_s = min_interval_s
        self.expected_latency_s = expected_latency_s
        self.unsure_below = unsure_below
        self.last_slow_t: float | None = None

    def observe_latency(self, seconds: float) -> None:
        """Learn how long the VLM really takes (a moving average that reacts to a slow server quickly)."""
        self.expected_latency_s = 0.7 * self.expected_latency_s + 0.3 * seconds

    def decide(
        self, t: float, recognition: Recognition | None, question: str | None = None, cut: bool = False
    ) -> Route:
        def fast(reason: str) -> Route:
            return Route("fast", reason, t, question)

        if not self.vlm_available:
            return fast("no VLM configured")
        if self.expected_latency_s > self.budget_s:
            return fast(f"the VLM takes ~{self.expected_latency_s:.1f} s, over the {self.budget_s:.1f} s budget")
        if question is not None:
            if VISUAL_QUESTION.search(question):
                return self._slow("a question about what is on screen", t, question)
            return fast("a question the game state answers")
        if self.last_slow_t is not None and t - self.last_slow_t < self.min_interval_s:
            return fast(f"the VLM looked {t - self.last_slow_t:.1f} s ago")
        if recognition is None:
            return self._slow("nothing recognised (no game prototypes learnt)", t)
        if recognition.game is None or recognition.game_confidence < 0.5:
            return self._slow(f"an unknown game (nearest example similarity {recognition.similarity:.2f})", t)
        if recognition.scene_confidence < self.unsure_below:
            return self._slow(f"unsure of the scene ({recognition.scene} at {recognition.scene_confidence:.2f})", t)
        if cut:
            return self._slow("a new scene", t)
        return fast("known game and scene")

    def _slow(self, reason: str, t: float, question: str | None = None) -> Route:
        self.last_slow_t = t
        return Route("slow", reason, t, question)
