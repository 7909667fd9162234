"""Rates how much a line gives away (0 none, 1 hint, 2 solution) with patterns from spoilers.yaml, so the
companion can hold back what the player does not want to hear (their profile's spoiler tolerance)."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

import yaml

NONE, HINT, SOLUTION = 0, 1, 2
LIMIT = {"none": NONE, "hints": HINT, "full": SOLUTION}
"""The highest rating a player with that spoiler tolerance hears."""


@cache
def _patterns() -> tuple[tuple[int, re.Pattern[str]], ...]:
    data = yaml.safe_load((resources.files("kibitz.core") / "data" / "spoilers.yaml").read_text(encoding="utf-8"))
    levels = {"solution": SOLUTION, "hint": HINT}
    return tuple(
        (levels[name], re.compile(p, re.IGNORECASE)) for name in ("solution", "hint") for p in data.get(name, [])
    )


def rate(text: str) -> int:
    """0 (gives nothing away), 1 (a hint) or 2 (a solution, a secret or what comes later)."""
    best = NONE
    for level, pattern in _patterns():
        if level > best and pattern.search(text):
            best = level
            if best == SOLUTION:
                break
    return best
