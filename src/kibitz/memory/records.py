"""The records memory stores: one remembered thing, and the topic summaries that index them."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass
from typing import Any

KINDS = ("fact", "event", "preference", "life", "strategy")
"""fact: about the game as the player met it; event: what happened to them (died 5 times to Bowser); preference:
how they like kibitz to talk (hints, not solutions); life: something they shared about themselves; strategy: what
worked."""


def normalise(text: str) -> str:
    """The key two memories share when they say the same thing (case, spacing, punctuation and numbers aside:
    "Died 4 times to Bowser" and "died 5 times to Bowser" are one memory, updated)."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"\d+", "#", text)
    return " ".join(re.findall(r"[\w#]+", text))


@dataclass(slots=True)
class Memory:
    """One remembered thing about one player."""

    user: str
    text: str
    game: str = ""
    """"" for what is not about a game (life facts, general preferences)."""
    topic: str = "general"
    """bosses, levels, items, strategies, habits, life... or a name (Bowser, world 4-1)."""
    kind: str = "fact"
    importance: float = 0.5
    """0..1: how much it matters (a deadly boss more than a coin)."""
    created: float = 0.0
    updated: float = 0.0
    source: str = "conversation"
    """conversation, event, feedback, command."""
    id: int | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Hit:
    """A memory found for a query, with the parts of its score."""

    memory: Memory
    score: float
    similarity: float
    recency: float
    topic_match: float
