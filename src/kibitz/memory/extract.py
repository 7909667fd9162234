"""Writing memory: facts from what happened in the game and from what the player said.

Game events become tallies that are updated, not appended ("Died 5 times in level 1-2 of Super Mario Bros."
is one memory whose count grows across sessions), the furthest level, and one summary per session ("what did
I do last time"). What the player says goes through the rules in data/facts.yaml (name, pets, favourites,
likes, the boss they keep dying to, how they beat it...), in English and Korean; statements no rule
understands are kept as low-importance "said" memories. No model is called: every write is a store write.
"""

from __future__ import annotations

import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib import resources

import yaml

from kibitz.core.korean import fill
from kibitz.core.records import Event, Observation
from kibitz.memory.records import Memory
from kibitz.memory.store import MemoryStore

HANGUL = re.compile(r"[\uac00-\ud7a3]")
SAID_MIN_WORDS = 5
TALLY_TEXT = {"game overs": "Game overs in {title}: {n}.", "combat": "Enemies defeated in {title}: {n}."}
"""Tallies are one memory each whose count changes (same text up to the number, so a write updates it)."""
TALLY = re.compile(r"(?:Deaths|Game overs|Enemies defeated) .*?: (\d+)")
OLD_TALLY = re.compile(r"(?:Got|Defeated) (\d+) (?:game overs?|enem(?:y|ies)) in ")


def language_of(text: str) -> str:
    return "ko" if HANGUL.search(text) else "en"


@dataclass(frozen=True, slots=True)
class FactRule:
    topic: str
    kind: str
    importance: float
    patterns: tuple[re.Pattern[str], ...]
    text: dict[str, str]


@cache
def fact_rules() -> tuple[FactRule, ...]:
    data = yaml.safe_load((resources.files("kibitz.memory") / "data" / "facts.yaml").read_text(encoding="utf-8"))
    return tuple(
        FactRule(
            topic=r["topic"],
            kind=r["kind"],
            importance=float(r.get("importance", 0.5)),
            patterns=tuple(re.compile(p, re.IGNORECASE) for p in r["patterns"]),
            text=dict(r["text"]),
        )
        for r in data
    )


def facts_from_text(text: str, user: str, game: str = "") -> list[Memory]:
    """The memories one message from the player holds (life facts are about no game; the rest about `game`)."""
    language = language_of(text)
    found: list[Memory] = []
    for rule in fact_rules():
        for pattern in rule.patterns:
            match = pattern.search(text)
            if match is None:
                continue
            groups = defaultdict(str, {k: v.strip().rstrip(".!?,") for k, v in match.groupdict().items() if v})
            memory_text = fill(rule.text.get(language, rule.text["en"]), groups)
            topic = rule.topic.format(**groups).lower() if "{" in rule.topic else rule.topic
            where = "" if rule.kind in ("life", "preference") else game
            found.append(Memory(user, memory_text, where, topic, rule.kind, rule.importance, source="conversation"))
            break
    if not found and "?" not in text and len(text.split()) >= SAID_MIN_WORDS:
        said = f'The player said: "{text.strip()}"'
        found.append(Memory(user, said, game, "said", "fact", 0.2, source="conversation"))
    return found


def _level_key(level: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", level)) or (0,)


class MemoryWriter:
    """Turns one player's session into memories. Cheap enough for the game loop: a handful of store writes per
    event, each committed at once with its embedding deferred (see MemoryStore.remember)."""

    def __init__(
        self,
        store: MemoryStore,
        user: str,
        game: str,
        title: str,
        level_fields: list[str] | None = None,
        sink: Callable[[Memory], object] | None = None,
        replace: Callable[[Memory], object] | None = None,
    ) -> None:
        self.store, self.user, self.game, self.title = store, user, game, title
        self.level_fields = level_fields or []
        self.sink = sink or (lambda m: store.remember(m, now=m.updated or None, embed_now=False))
        """Where a memory goes: the store at once (default), or a worker that writes it."""
        self.replace = replace or (lambda m: store.replace(m, embed_now=False))
        """Where a memory that supersedes its topic goes (see MemoryStore.replace)."""
        self.level: str | None = None
        self.started = time.time()
        self.session = Counter[str]()
        self.session_levels: list[str] = []
        self.deaths_by_level = Counter[str]()
        self.tally = Counter[str]()
        self.furthest: str | None = None
        self._new_furthest = False
        self._load()

    def begin_session(self, now: float | None = None) -> None:
        """A new session starts (a writer starts with one; a benchmark replaying many sessions calls this)."""
        self.started = time.time() if now is None else now
        self.session.clear()
        self.session_levels.clear()
        self.deaths_by_level.clear()

    def _load(self) -> None:
        """Start the tallies from what earlier sessions left (the counts live in the memories' text)."""
        stale: set[str] = set()
        for m in self.store.memories(self.user, self.game):
            if m.source != "event":
                continue
            if count := TALLY.match(m.text):
                self.tally[m.topic] = max(self.tally[m.topic], int(count.group(1)))
            elif (count := OLD_TALLY.match(m.text)) and m.topic in TALLY_TEXT:
                # Earlier versions wrote "Got 3 game overs in ..." / "Defeated 12 enemies in ...", one memory per
                # count: the highest count in today's form replaces them.
                self.tally[m.topic] = max(self.tally[m.topic], int(count.group(1)))
                stale.add(m.topic)
            if m.topic == "progress" and (level := re.search(r": (\S+)\.$", m.text)):
                self.furthest = level.group(1)
        for topic in sorted(stale):
            text = TALLY_TEXT[topic].format(title=self.title, n=self.tally[topic])
            self.replace(Memory(self.user, text, self.game, topic, "event", 0.4, source="event"))

    def _write(self, text: str, topic: str, importance: float, kind: str = "event", now: float | None = None) -> Memory:
        memory = Memory(self.user, text, self.game, topic, kind, min(1.0, importance), source="event")
        if now is not None:
            memory.updated = now
        self.sink(memory)
        return memory

    # --- the game --------------------------------------------------------------------------------------
    def observe(self, obs: Observation) -> None:
        """Follow the level being played (for where deaths happen)."""
        if self.level_fields:
            values = [obs.value(f) for f in self.level_fields]
            if all(v is not None for v in values):
                self.level = "-".join(str(v) for v in values)

    def on_event(self, event: Event, now: float | None = None) -> list[Memory]:
        handler = getattr(self, f"_on_{event.type}", None)
        if handler is None:
            return []
        self.session[event.type] += 1
        written: list[Memory] = handler(event, now)
        return written

    def notes(self, event: Event) -> list[str]:
        """What memory adds to an event that was just handled, when it is news: a death that keeps happening in
        the same place (across sessions), a level never reached before."""
        if event.type == "death":
            n = self.tally[f"level {self.level}"] if self.level else self.tally["deaths"]
            where = f" in level {self.level}" if self.level else ""
            return [f"death number {n}{where}, counting earlier sessions"] if n >= 2 else []
        if event.type == "level_change" and self.furthest == event.data.get("level") and self._new_furthest:
            return ["the furthest the player has ever got"]
        if event.type == "game_over" and self.tally["game overs"] >= 2:
            return [f"game over number {self.tally['game overs']}"]
        return []

    def _count(self, topic: str) -> int:
        self.tally[topic] += 1
        return self.tally[topic]

    def _on_death(self, event: Event, now: float | None) -> list[Memory]:
        if self.level:
            self.deaths_by_level[self.level] += 1
            topic = f"level {self.level}"
            n = self._count(topic)
            text = f"Deaths in level {self.level} of {self.title}: {n}."
        else:
            n = self._count("deaths")
            text = f"Deaths in {self.title}: {n}."
            topic = "deaths"
        return [self._write(text, topic, 0.3 + 0.08 * n, now=now)]

    def _on_game_over(self, event: Event, now: float | None) -> list[Memory]:
        n = self._count("game overs")
        text = TALLY_TEXT["game overs"].format(title=self.title, n=n)
        if self.level:
            text = f"{text[:-1]} (the last one in level {self.level})."
        return [self._write(text, "game overs", 0.4, now=now)]

    def _on_kill(self, event: Event, now: float | None) -> list[Memory]:
        n = self._count("combat")
        return [self._write(TALLY_TEXT["combat"].format(title=self.title, n=n), "combat", 0.3, now=now)]

    def _on_level_change(self, event: Event, now: float | None) -> list[Memory]:
        level = str(event.data.get("level") or "")
        previous = str(event.data.get("previous") or "")
        if not level:
            return []
        self.level = level
        self.session_levels.append(level)
        written = []
        if previous and _level_key(level) > _level_key(previous):
            written.append(
                self._write(_end(f"Beat level {previous} of {self.title}"), f"level {previous}", 0.6, now=now)
            )
        self._new_furthest = self.furthest is not None and _level_key(level) > _level_key(self.furthest)
        if self.furthest is None or _level_key(level) > _level_key(self.furthest):
            self.furthest = level
            written.append(self._write(f"Furthest level reached in {self.title}: {level}.", "progress", 0.7, now=now))
        return written

    def end_session(self, now: float | None = None) -> Memory | None:
        """One memory for the session: when, for how long, how far, how it went."""
        now = time.time() if now is None else now
        if not self.session:
            return None
        minutes = max(1, round((now - self.started) / 60))
        when = datetime.fromtimestamp(now).strftime("%Y-%m-%d %H:%M")
        parts = [f"Session on {when}: played {self.title} for {minutes} min"]
        if self.session_levels:
            parts.append(f"reached level {self.session_levels[-1]}")
        deaths = self.session["death"]
        if deaths:
            worst = self.deaths_by_level.most_common(1)
            where = f", most in level {worst[0][0]}" if worst else ""
            parts.append(f"died {deaths} {_times(deaths)}{where}")
        if self.session["game_over"]:
            overs = self.session["game_over"]
            parts.append(f"{overs} game {'over' if overs == 1 else 'overs'}")
        text = _end(", ".join(parts))
        return self._write(text, f"session {when}", 0.6, now=now)

    # --- the conversation ----------------------------------------------------------------------------------
    def on_player_text(self, text: str, now: float | None = None) -> list[Memory]:
        found = facts_from_text(text, self.user, self.game)
        for memory in found:
            if now is not None:
                memory.updated = now
            self.sink(memory)
        return found


def _end(text: str) -> str:
    return text if text.endswith(".") else text + "."


def _times(n: int) -> str:
    return "time" if n == 1 else "times"
