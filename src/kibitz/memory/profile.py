"""The player's profile: how they like kibitz to talk. Kept in the memory store (per user), shown to them, and
changed by what they say ("talk less", "no spoilers", "스포 하지 마") and by their feedback (a thumbs down on a
spoiler). The profile overrides the persona's own settings for that player.

Keys and values:
- spoilers: none | hints | full — how much the companion may reveal;
- verbosity: short | normal | chatty — how long a line is;
- frequency: quiet | normal | lively — how often it speaks on its own (the speak policy's cooldown);
- tone: serious | normal | jokes — how much it jokes;
- language: en, ko, ja... — the language it speaks;
- persona: a persona name (`kibitz personas`) to use by default.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from kibitz.core.errors import ConfigError
from kibitz.core.persona import LANGUAGE_NAMES, Persona, SpoilerTolerance, Verbosity

LEVELS: dict[str, tuple[str, ...]] = {
    "spoilers": ("none", "hints", "full"),
    "verbosity": ("short", "normal", "chatty"),
    "frequency": ("quiet", "normal", "lively"),
    "tone": ("serious", "normal", "jokes"),
}
"""Ordered keys: feedback moves them one step ("talk less" lowers verbosity and frequency)."""
COOLDOWN_FACTOR = {"quiet": 2.5, "normal": 1.0, "lively": 0.6}
TONE_STYLE = {
    "serious": "Keep it sincere and focused: no jokes.",
    "normal": "",
    "jokes": "Crack a light joke whenever you can.",
}
HELP = {
    "spoilers": "none | hints | full",
    "verbosity": "short | normal | chatty",
    "frequency": "quiet | normal | lively",
    "tone": "serious | normal | jokes",
    "language": "a language code: " + ", ".join(LANGUAGE_NAMES),
    "persona": "a persona name from `kibitz personas`",
}


@dataclass(frozen=True, slots=True)
class Profile:
    """A player's settings; None means "the persona's own"."""

    spoilers: str | None = None
    verbosity: str | None = None
    frequency: str | None = None
    tone: str | None = None
    language: str | None = None
    persona: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, str]) -> Profile:
        """The profile from stored key/values (unknown or invalid ones are ignored: the store may be newer)."""
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in data.items():
            if key in known:
                try:
                    values[key] = check(key, value)
                except ConfigError:
                    continue
        return cls(**values)

    def to_dict(self) -> dict[str, str]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    def with_(self, key: str, value: str) -> Profile:
        return replace(self, **{key: check(key, value)})

    def step(self, key: str, persona: Persona, delta: int) -> str:
        """The value one step up or down from the current one (the persona's when unset), clamped."""
        order = LEVELS[key]
        current = self.effective(key, persona)
        return order[max(0, min(len(order) - 1, order.index(current) + delta))]

    def effective(self, key: str, persona: Persona) -> str:
        """What applies now: the player's setting, or the persona's default."""
        value = getattr(self, key)
        if value is not None:
            return str(value)
        defaults = {
            "spoilers": persona.spoiler_tolerance.value,
            "verbosity": persona.verbosity.value,
            "frequency": "normal",
            "tone": "normal",
            "language": persona.language,
        }
        return defaults.get(key, "")

    def apply(self, persona: Persona) -> Persona:
        """The persona as this player wants it: their spoiler tolerance, verbosity, language and tone."""
        update: dict[str, Any] = {}
        if self.spoilers is not None:
            update["spoiler_tolerance"] = SpoilerTolerance(self.spoilers)
        if self.verbosity is not None:
            update["verbosity"] = Verbosity(self.verbosity)
        if self.language is not None:
            update["language"] = self.language
        if self.tone not in (None, "normal"):
            update["style"] = f"{persona.style}. {TONE_STYLE[str(self.tone)]}"
        return persona.model_copy(update=update) if update else persona

    def cooldown_factor(self) -> float:
        return COOLDOWN_FACTOR[self.frequency or "normal"]

    def describe(self, persona: Persona) -> str:
        """One line for the player: what applies now, theirs marked."""
        parts = []
        for key in ("spoilers", "verbosity", "frequency", "tone", "language"):
            mark = "" if getattr(self, key) is not None else " (default)"
            parts.append(f"{key} {self.effective(key, persona)}{mark}")
        return ", ".join(parts)


def check(key: str, value: str) -> str:
    """A valid profile value, or a one-sentence error naming what is allowed."""
    value = value.strip()
    allowed: tuple[str, ...] | None = LEVELS.get(key)
    if key == "language":
        allowed = tuple(LANGUAGE_NAMES)
    if key == "persona":
        from kibitz.core.persona import builtin_personas

        allowed = tuple(builtin_personas())
    if key not in HELP:
        raise ConfigError(f"Unknown profile key {key!r}; keys: {', '.join(HELP)}.")
    if allowed is not None and value not in allowed:
        raise ConfigError(f"Bad value {value!r} for {key}; use {HELP[key]}.")
    return value
