"""What the player says that changes how kibitz talks ("talk less", "no spoilers", "스포 하지 마"), and their
feedback on a line (a thumbs down on a spoiler): both become profile changes, remembered preferences and a
short acknowledgement. The rules are data (data/commands.yaml); feedback reasons come from the line itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import yaml

from kibitz.core.persona import Persona
from kibitz.core.spoiler import HINT, rate
from kibitz.core.text import sentence_ends
from kibitz.memory.profile import Profile

THUMBS_DOWN = ("/down", "/bad", "👎", "-1")
THUMBS_UP = ("/up", "/good", "👍", "+1")
LONG_LINE_WORDS = 18
"""A disliked line longer than this (or of more than one sentence) counts as "too long"."""


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    patterns: tuple[re.Pattern[str], ...]
    set: dict[str, str]
    step: dict[str, int]
    memory: str
    ack: dict[str, str]


@dataclass(slots=True)
class Outcome:
    """What a message or a piece of feedback changed."""

    profile: Profile
    changes: dict[str, tuple[str, str]] = field(default_factory=dict)
    """key → (before, after), as they apply (the persona's default when the player had none)."""
    memories: list[tuple[str, str]] = field(default_factory=list)
    """(topic, text) of preferences to remember; a new one replaces what its topic said before."""
    acks: list[str] = field(default_factory=list)
    rules: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    @property
    def ack(self) -> str:
        return " ".join(dict.fromkeys(self.acks))


@cache
def rules() -> tuple[Rule, ...]:
    text = (resources.files("kibitz.memory") / "data" / "commands.yaml").read_text(encoding="utf-8")
    out = []
    for item in yaml.safe_load(text):
        out.append(
            Rule(
                name=item["name"],
                patterns=tuple(re.compile(p, re.IGNORECASE) for p in item["patterns"]),
                set=dict(item.get("set", {})),
                step={k: int(v) for k, v in item.get("step", {}).items()},
                memory=item.get("memory", ""),
                ack=dict(item.get("ack", {})),
            )
        )
    return tuple(out)


def _apply(outcome: Outcome, persona: Persona, key: str, value: str) -> None:
    before = outcome.profile.effective(key, persona)
    outcome.profile = outcome.profile.with_(key, value)
    if value != before:
        first = outcome.changes.get(key, (before, value))[0]
        outcome.changes[key] = (first, value)


def _run(rule: Rule, outcome: Outcome, persona: Persona, language: str) -> None:
    for key, value in rule.set.items():
        _apply(outcome, persona, key, value)
    for key, delta in rule.step.items():
        _apply(outcome, persona, key, outcome.profile.step(key, persona, delta))
    outcome.rules.append(rule.name)
    if rule.memory:
        keys = [*rule.set, *rule.step]
        outcome.memories.append((f"talk: {keys[0]}" if keys else "talk", rule.memory))
    ack = rule.ack.get(language) or rule.ack.get("en")
    if ack:
        outcome.acks.append(ack)


def interpret(text: str, profile: Profile, persona: Persona) -> Outcome:
    """The profile after the player said `text` (unchanged when it holds no command)."""
    outcome = Outcome(profile)
    language = profile.effective("language", persona)
    for rule in rules():
        if any(p.search(text) for p in rule.patterns):
            _run(rule, outcome, persona, language)
    return outcome


def is_command_only(text: str) -> bool:
    """True when the message is only a request about how kibitz talks (nothing left to answer)."""
    rest = text
    for rule in rules():
        for p in rule.patterns:
            rest = p.sub(" ", rest)
    words = re.findall(r"\w+", rest)
    filler = {"please", "and", "ok", "okay", "now", "from", "on", "just", "kibi", "hey", "좀", "제발", "이제", "그리고"}
    return len([w for w in words if w.lower() not in filler]) <= 2 and not rest.strip().endswith("?")


def feedback_rating(text: str) -> int | None:
    """-1 for a thumbs down, +1 for a thumbs up, None for anything else."""
    word = text.strip().lower()
    if word in THUMBS_DOWN:
        return -1
    if word in THUMBS_UP:
        return 1
    return None


def feedback(line: str, rating: int, profile: Profile, persona: Persona) -> Outcome:
    """The profile after the player rated the companion's last line. A thumbs down on a line that gave
    something away lowers the spoiler tolerance one step below what that line revealed; on a long line, the
    verbosity; on a joke-free line nothing but the memory of it. A thumbs up is remembered, nothing changes."""
    outcome = Outcome(profile)
    language = profile.effective("language", persona)
    if rating > 0:
        outcome.memories.append(("feedback", f'Liked this line from the companion: "{line}"'))
        return outcome
    level = rate(line)
    by_name = {r.name: r for r in rules()}
    if level >= HINT:
        allowed = profile.effective("spoilers", persona)
        target = "none" if level == HINT or allowed == "hints" else "hints"
        rule = by_name["no-spoilers" if target == "none" else "hints-only"]
        _run(rule, outcome, persona, language)
    if len(line.split()) > LONG_LINE_WORDS or len(sentence_ends(line)) > 1:
        _run(by_name["talk-less"], outcome, persona, language)
    if not outcome.rules:
        outcome.memories.append(("feedback", f'Disliked this line from the companion: "{line}"'))
        outcome.acks.append("Noted." if language != "ko" else "알았어, 기억할게.")
    return outcome


def describe_changes(outcome: Outcome) -> str:
    """ "spoilers hints → none, verbosity short → short" for the player to see."""
    return ", ".join(f"{k} {a} → {b}" for k, (a, b) in outcome.changes.items())


def to_json(outcome: Outcome) -> dict[str, Any]:
    return {"profile": outcome.profile.to_dict(), "changes": outcome.changes, "rules": outcome.rules}
