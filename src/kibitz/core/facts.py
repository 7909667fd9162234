"""Phrases an event's facts (records.Facts) for its summary: one plain sentence of particulars, in English (the
wording is data: core/data/facts.yaml)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from importlib import resources
from typing import Any

import yaml

from kibitz.core.records import Facts

BEST_MARGIN = 0.03
"""How far (a share of the level) this try must be past, or short of, the session's best to say so."""


@cache
def _phrases() -> dict[str, Any]:
    text = (resources.files("kibitz.core") / "data" / "facts.yaml").read_text(encoding="utf-8")
    data: dict[str, Any] = yaml.safe_load(text)
    return data


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, 11th, 21st..."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def plural(n: int, noun: str) -> str:
    """ "1 death", "3 deaths"."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def percent(share: float) -> int:
    return max(0, min(100, round(share * 100)))


def particulars(event_type: str, facts: Facts, level_name: str = "") -> list[tuple[str, str]]:
    """The facts worth saying about an event of this type, as (kind, short phrase): ("cause", "fell into a pit"),
    ("count", "the 3rd death in World 1-2 this session"); [] when none is known. `level_name` names the level as the
    game does."""
    p = _phrases()
    level = level_name or facts.level or ""
    noun = p["nouns"].get(event_type, event_type.replace("_", " "))
    out: list[tuple[str, str]] = []

    def add(kind: str, phrase: str) -> None:
        out.append((kind, phrase))

    if facts.cause:
        add("cause", p["cause"].format(cause=facts.cause))
    if facts.progress is not None and level and event_type in ("death", "stall", "game_over", "near_miss"):
        add("place", p["place"].format(percent=percent(facts.progress), level=level))
    if event_type in ("death", "game_over"):
        if facts.nth_here is not None and facts.nth_here > 1 and level:
            add("count", p["nth_here"].format(ordinal=ordinal(facts.nth_here), noun=noun, level=level))
        elif facts.nth is not None and facts.nth > 1:
            add("count", p["nth"].format(ordinal=ordinal(facts.nth), noun=noun))
    if event_type == "record" and facts.progress is not None and facts.best_progress is not None and level:
        add("place", p["place"].format(percent=percent(facts.progress), level=level))
        add(
            "best",
            p["best_before"].format(best=percent(facts.best_progress), deaths=plural(facts.nth_here or 0, "death")),
        )
    elif facts.best_progress is not None and facts.progress is not None and level:
        best = percent(facts.best_progress)
        if facts.progress > facts.best_progress + BEST_MARGIN:
            add("best", p["beyond_best"].format(level=level, best=best))
        elif facts.progress < facts.best_progress - BEST_MARGIN:
            add("best", p["short_of_best"].format(level=level, best=best))
    if event_type == "level_change":
        if facts.first_visit:
            add("first", p["first_visit"].format(level=level))
        elif facts.first_visit is False and facts.nth_here:
            add("count", p["again"].format(level=level, count=facts.nth_here))
        if facts.previous and facts.lasted_s is not None:
            add("time", p["took"].format(previous=facts.previous, seconds=round(facts.lasted_s)))
    elif facts.lasted_s is not None and event_type == "death":
        add("time", p["lasted"].format(seconds=round(facts.lasted_s)))
    if facts.gained and event_type == "death":
        add("points", p["gained"].format(gained=facts.gained))
    if event_type == "near_miss" and facts.nth is not None and facts.nth > 1:
        add("count", p["nth"].format(ordinal=ordinal(facts.nth), noun=noun))
    if event_type == "stall" and facts.nth_here and level:
        add("count", p["deaths_here"].format(deaths=plural(facts.nth_here, "death"), level=level))
    if event_type == "score_milestone":
        if level:
            add("place", p["in_level"].format(level=level))
        if facts.lasted_s is not None:
            add("time", p["into_game"].format(seconds=round(facts.lasted_s)))
    if event_type == "game_start" and facts.nth is not None and facts.nth > 1:
        add("count", p["nth_game"].format(ordinal=ordinal(facts.nth)))
        if facts.best_score is not None:
            add("best", p["best_game"].format(best_score=facts.best_score))
    if event_type.endswith("streak") and facts.nth is not None:
        if facts.nth > 1:
            add("count", p["nth_streak"].format(ordinal=ordinal(facts.nth), noun=noun))
        else:
            add("first", p["first_streak"].format(noun=noun))
        if level:
            add("place", p["in_level"].format(level=level))
    if event_type == "game_over":
        if facts.score is not None:
            add("score", p["score"].format(score=facts.score))
        if facts.best_score is not None and facts.score is not None and facts.score > facts.best_score:
            add("best", p["new_best_score"].format(best_score=facts.best_score))
        elif facts.best_score is not None:
            add("best", p["best_score"].format(best_score=facts.best_score))
    return out


def with_particulars(summary: str, details: Sequence[tuple[str, str]]) -> str:
    """The event's summary with its details: "The player just died (2 lives left): fell into a pit; ..."."""
    if not details:
        return summary
    return f"{summary.rstrip('.')}: {'; '.join(phrase for _, phrase in details)}."
