"""The typed records that flow one way through the pipeline: Frame → Observation → Event → Utterance."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, fields
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
class Facts:
    """What kibitz knows about an event beyond its type, as typed values (None: not known): the particulars a friend
    would name ("that pit after the third pipe got you again, third time"). Filled in by the session's chronicle
    (kibitz.state.chronicle) from the game's truth and what happened earlier; phrased for prompts by
    kibitz.core.facts."""

    cause: str | None = None
    """How it happened, in a few words: "fell into a pit", "ran into a Goomba", "the clock ran out"."""
    culprit: str | None = None
    """Who or what did it, when it is one thing with a name: "Goomba"."""
    level: str | None = None
    """The level it happened in ("1-2")."""
    progress: float | None = None
    """How far through the level the player was, 0-1."""
    nth: int | None = None
    """This is the player's nth event of this type this session (this one counted)."""
    nth_here: int | None = None
    """...in this level."""
    best_progress: float | None = None
    """The furthest the player got through this level this session before this life."""
    lasted_s: float | None = None
    """How long the life (a death), the level (a level change) or the game (a game over) lasted, in seconds."""
    gained: int | None = None
    """The points scored over that time."""
    score: int | None = None
    """The score at the event."""
    best_score: int | None = None
    """The best final score of this session's earlier games (a game over)."""
    first_visit: bool | None = None
    """A level reached for the first time this session."""
    previous: str | None = None
    """The level before (a level change)."""

    def known(self) -> dict[str, Any]:
        """The facts that are known, by name."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return {name: value for name, value in values.items() if value is not None}


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
    facts: Facts = field(default_factory=Facts)
    """The particulars of this moment (cause, place, how often), as far as they are known."""
    details: tuple[tuple[str, str], ...] = ()
    """The facts as short phrases, with the kind of each ("cause", "fell into a pit"): what `summary` adds to
    `headline`, and what the companion picks from to name something particular."""
    headline: str = ""
    """The plain sentence of what happened, without the details ("" when the summary is plain)."""

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
            **({"facts": known} if (known := self.facts.known()) else {}),
            **({"details": [list(d) for d in self.details], "headline": self.headline} if self.details else {}),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Event:
        """An event written by `to_json` (a recorded stream), its id kept."""
        return cls(
            t=float(data["t"]),
            type=str(data["type"]),
            priority=int(data["priority"]),
            summary=str(data["summary"]),
            data=dict(data.get("data") or {}),
            game=data.get("game"),
            id=int(data["id"]),
            facts=Facts(**(data.get("facts") or {})),
            details=tuple((str(k), str(p)) for k, p in data.get("details") or ()),
            headline=str(data.get("headline") or ""),
        )


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
