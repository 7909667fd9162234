"""What kibitz knows about a game, as records: one fact or tip each, with how much it gives away (a spoiler class,
as in core.spoiler) and where it came from. Built-in knowledge comes from the game plugins' knowledge files
(kibitz.games.knowledge), a player's own guides from `kibitz games guide` (kibitz.memory.guides); both are data
for the prompt, quoted, never instructions."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from importlib import resources

import yaml

from kibitz.core.records import Event

TIP_EVENTS = frozenset({"death", "game_over", "stall", "low_time", "low_health"})
"""The events a friend may follow with a tip (when the same thing went wrong before: see `wants_tip`)."""


@dataclass(frozen=True, slots=True)
class Tip:
    text: str
    spoiler: int
    """0 none (how the game works), 1 hint (points at something to try), 2 solution (a secret, what comes later)."""
    source: str
    """Where it comes from: the knowledge file's sources, or the guide file's name and section."""
    about: tuple[str, ...] = ()
    """Lower-case names it is about: enemies ("goomba"), causes ("fell", "clock"), event types ("stall")."""
    levels: tuple[str, ...] = ()
    """The levels it is about ("1-2"); empty: the whole game."""
    not_in: tuple[str, ...] = ()
    """Levels known not to hold what it is about (an enemy tip in a level without that enemy)."""

    def fits(self, level: str | None) -> bool:
        """The tip may be offered in this level (None: not known)."""
        return (not self.levels or level in self.levels) and (level is None or level not in self.not_in)


def words(text: str) -> set[str]:
    """Lower-case words of a text (letters of any script, digits), for matching tips to events and questions."""
    return {w for w in re.findall(r"[^\W_]+", text.lower()) if len(w) > 1 or w.isdigit()}


def event_keys(event: Event) -> set[str]:
    """What an event is about, in the words tips are tagged with: its type, its cause's words, its culprit."""
    keys = {event.type}
    facts = event.facts
    if facts is not None:
        if facts.cause:
            keys |= words(facts.cause)
        if facts.culprit:
            keys |= words(facts.culprit) | {facts.culprit.lower()}
    return keys


def wants_tip(event: Event) -> bool:
    """A friend gives a tip when the same thing has gone wrong before, not the first time: a second death in this
    level (or this session, where levels are not known), a stall, time running low."""
    if event.type not in TIP_EVENTS:
        return False
    if event.type in ("death", "game_over"):
        facts = event.facts
        return facts is not None and (facts.nth_here or facts.nth or 0) >= 2
    return True


def matches(tip: Tip, keys: set[str], level: str | None) -> int:
    """How well a tip fits an event (0: not at all): it must name something the event is about (its culprit, its
    cause, its type), and a tip about a level fits only there; the more it names, the better, and a tip for this
    level beats one for the whole game. Tips about nothing in particular are for questions only."""
    if not tip.fits(level):
        return 0
    named = len(set(tip.about) & keys)
    return 2 * named + (1 if tip.levels else 0) if named else 0


@cache
def _advice_patterns() -> tuple[re.Pattern[str], ...]:
    data = yaml.safe_load((resources.files("kibitz.core") / "data" / "advice.yaml").read_text(encoding="utf-8"))
    return tuple(re.compile(p, re.IGNORECASE) for p in data["patterns"])


def asks_for_advice(question: str, names: Iterable[str] = ()) -> bool:
    """The question asks how to play, what to do or about the game itself (core/data/advice.yaml), or names one of
    `names` (what the game's tips are about); not a question about the state on screen ("how many lives?")."""
    text = question.replace("\u2019", "'")
    if any(p.search(text) for p in _advice_patterns()):
        return True
    asked = words(text)
    return any(n in asked for n in names if len(n) > 3)
