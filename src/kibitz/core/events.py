"""The event types, declared once as data (core/data/events.yaml): priority, cooldown, spoiler class, and whether
the bench scores them. Detectors, the speak policy, the bench and the personas all read them from here."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

import yaml

from kibitz.core.errors import ConfigError

SPOILER_CLASSES = ("none", "hint", "solution")
UNKNOWN_PRIORITY = 1
"""The priority of an event type no file declares (a plugin's own, say): spoken only when nothing else is."""


@dataclass(frozen=True, slots=True)
class EventType:
    name: str
    priority: int
    cooldown_s: float
    spoiler: str
    """none | hint | solution: the most a reaction to this event may give away."""
    scored: bool
    """The bench's events task scores it (what a companion should notice)."""
    meaning: str

    @property
    def spoiler_level(self) -> int:
        return SPOILER_CLASSES.index(self.spoiler)


@cache
def event_types() -> dict[str, EventType]:
    """Every declared event type by name, in the file's order."""
    text = (resources.files("kibitz.core") / "data" / "events.yaml").read_text(encoding="utf-8")
    types = {name: EventType(name, **spec) for name, spec in yaml.safe_load(text).items()}
    for t in types.values():
        if t.spoiler not in SPOILER_CLASSES or not 0 <= t.priority <= 10:
            raise ConfigError(f"Event type {t.name!r} in events.yaml has a bad spoiler class or priority.")
    return types


def priority(name: str) -> int:
    t = event_types().get(name)
    return t.priority if t is not None else UNKNOWN_PRIORITY


def cooldowns() -> dict[str, float]:
    """The per-type cooldowns the speak policy starts from (types with none left out)."""
    return {name: t.cooldown_s for name, t in event_types().items() if t.cooldown_s > 0}


def scored() -> tuple[str, ...]:
    """The event types the bench scores."""
    return tuple(name for name, t in event_types().items() if t.scored)


def spoiler_level(name: str) -> int:
    """0 (none), 1 (hint) or 2 (solution) for an event type; an unknown one counts as a hint."""
    t = event_types().get(name)
    return t.spoiler_level if t is not None else 1
