"""The typed records that flow one way through the pipeline: Frame → Observation → Event → Utterance."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

RGBImage = npt.NDArray[np.uint8]


@dataclass(frozen=True, slots=True)
class Frame:
    """One picture from a source; emulated games also carry their true state."""

    t: float
    """Seconds since the source started (game time for emulators, media time for videos)."""
    image: RGBImage
    """H×W×3 uint8 RGB."""
    source: str
    index: int
    state: dict[str, Any] | None = None
    """Ground truth read from the game itself (RAM); None for screen captures and videos."""


class Provenance(StrEnum):
    """Where a value in an Observation came from."""

    RAM = "ram"
    OCR = "ocr"
    CLASSIFIER = "classifier"
    VLM = "vlm"


@dataclass(frozen=True, slots=True)
class Reading:
    """One value perception concluded, with where it came from and how sure it is."""

    value: Any
    source: Provenance
    confidence: float = 1.0


@dataclass(frozen=True, slots=True)
class Observation:
    """What perception concluded from one frame."""

    t: float
    frame_index: int
    game: str | None
    game_confidence: float
    scene: str
    """gameplay, title, dying, transition, game_over, paused, unknown..."""
    fields: dict[str, Reading] = field(default_factory=dict)
    text: tuple[str, ...] = ()
    description: str | None = None

    def value(self, name: str, default: Any = None) -> Any:
        """The value of a HUD field, or default when perception did not read it."""
        reading = self.fields.get(name)
        return default if reading is None else reading.value

    def values(self) -> dict[str, Any]:
        """All field values as a plain dict."""
        return {k: r.value for k, r in self.fields.items()}


_event_ids = itertools.count(1)


@dataclass(frozen=True, slots=True)
class Event:
    """A change worth reacting to, derived from several observations."""

    t: float
    type: str
    """death, game_over, level_change, coin_streak, stall, low_time, score_milestone, question..."""
    priority: int
    summary: str
    """One plain sentence of what happened, in the player's terms (used in prompts and logs)."""
    data: dict[str, Any] = field(default_factory=dict)
    game: str | None = None
    id: int = field(default_factory=lambda: next(_event_ids))

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "event",
            "t": round(self.t, 3),
            "id": self.id,
            "type": self.type,
            "priority": self.priority,
            "summary": self.summary,
            "game": self.game,
            "data": self.data,
        }


@dataclass(frozen=True, slots=True)
class Hearing:
    """What the player is saying aloud, as heard so far: "" when they just started talking; `complete` when it is
    the whole question if they stop here (the recogniser's guess a moment into their silence)."""

    text: str
    complete: bool = False


@dataclass(slots=True)
class Utterance:
    """A line the companion says, filled in as tokens stream."""

    t: float
    """When the triggering event happened (seconds on the session clock)."""
    event_ids: list[int]
    trigger: str
    """The event type or "question" that caused it."""
    text: str = ""
    first_token_latency: float | None = None
    """Seconds from the event being handed to the companion to the first visible token."""
    total_latency: float | None = None
    queue_latency: float | None = None
    """Seconds from the event to the model starting on it (part of first_token_latency)."""
    hold_latency: float | None = None
    """The part of queue_latency the speak policy held the event on purpose (a cooldown)."""
    backend: str = ""
    finished: bool = False
    interrupted: bool = False
    """Cut short because something more important happened."""
    withheld: str = ""
    """What the model said that the player's spoiler tolerance held back (never shown)."""
    memory_wait: float | None = None
    """Seconds a question's line waited for the memories that may answer it (part of first_token_latency)."""
    error: str = ""
    """Why the line failed (the backend raised); the session goes on with the next one."""
    prompt_new: int | None = None
    """Prompt tokens the model still had to evaluate for this line (the rest was cached: the prefix prefetched, or a
    question's prompt evaluated while the player asked it); None where the backend does not say."""
    guessed: bool = False
    """A spoken question's answer written from the recogniser's guess at it, before the player was heard to stop."""

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "utterance",
            "t": round(self.t, 3),
            "trigger": self.trigger,
            "event_ids": self.event_ids,
            "text": self.text,
            **({"withheld": self.withheld} if self.withheld else {}),
            **({"error": self.error} if self.error else {}),
            "first_token_s": None if self.first_token_latency is None else round(self.first_token_latency, 3),
            "total_s": None if self.total_latency is None else round(self.total_latency, 3),
            "queue_s": None if self.queue_latency is None else round(self.queue_latency, 3),
            "hold_s": None if self.hold_latency is None else round(self.hold_latency, 3),
            **({"memory_wait_s": round(self.memory_wait, 3)} if self.memory_wait is not None else {}),
            "backend": self.backend,
            "interrupted": self.interrupted,
            **({"guessed": True} if self.guessed else {}),
        }
