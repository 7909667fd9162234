"""Which of a player's topics a question names, in English or Korean (data/topics.yaml), and which topic families
it asks the newest memory of ("what did I do last time?"): the topic parts of the hybrid search score."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources

import yaml

from kibitz.core.errors import KibitzError

_ASCII = re.compile(r"[\x00-\x7f]+")


@dataclass(frozen=True, slots=True)
class TopicWords:
    """What names one topic, or a family of topics ("level *")."""

    topic: str
    words: re.Pattern[str] | None
    latest: re.Pattern[str] | None
    rest: bool

    @property
    def family(self) -> bool:
        return self.topic.endswith("*")

    def covers(self, topic: str) -> bool:
        """Whether `topic` (lower case) is this entry's topic or one of its family."""
        return topic.startswith(self.topic[:-1]) if self.family else topic == self.topic

    def asked(self, question: str) -> bool:
        """Whether the (lower-case) question holds one of this entry's words or latest phrases."""
        return any(p is not None and p.search(question) for p in (self.words, self.latest))

    def rest_of(self, topic: str) -> str:
        """A family topic's variable part ("2-2" of "level 2-2")."""
        return topic[len(self.topic) - 1 :].strip() if self.family else ""


def _phrase(phrase: str) -> str:
    """A phrase as a pattern: whole words (with an optional plural) when it is ASCII, a substring when not."""
    text = re.escape(phrase.lower()).replace(r"\ ", r"\s+")
    if _ASCII.fullmatch(phrase):
        return rf"(?<![a-z0-9]){text}(?:s|es)?(?![a-z0-9])"
    return text


def _pattern(phrases: Sequence[str]) -> re.Pattern[str] | None:
    return re.compile("|".join(_phrase(str(p)) for p in phrases)) if phrases else None


@cache
def vocabulary() -> tuple[TopicWords, ...]:
    text = (resources.files("kibitz.memory") / "data" / "topics.yaml").read_text(encoding="utf-8")
    out = []
    for entry in yaml.safe_load(text):
        unknown = set(entry) - {"topic", "words", "latest", "rest"}
        if unknown:
            raise KibitzError(f"topics.yaml: unknown keys {sorted(unknown)} in {entry.get('topic')!r}.")
        out.append(
            TopicWords(
                topic=str(entry["topic"]).lower(),
                words=_pattern(entry.get("words", [])),
                latest=_pattern(entry.get("latest", [])),
                rest=bool(entry.get("rest", False)),
            )
        )
    return tuple(out)


@lru_cache(maxsize=8192)
def _entry(topic: str) -> TopicWords | None:
    for entry in vocabulary():
        if entry.covers(topic):
            return entry
    return None


def _low(question: str) -> str:
    return question.lower().replace("\u2019", "'")


def _mentions(low: str, name: str) -> bool:
    """Whether the question mentions a name: ASCII letters and digits must not run on from it on either side (a
    Korean particle may follow: "1-2에서")."""
    if not name:
        return False
    at = low.find(name)
    while at >= 0:
        end = at + len(name)
        if (at == 0 or not _runs_on(low[at - 1])) and (end == len(low) or not _runs_on(low[end])):
            return True
        at = low.find(name, at + 1)
    return False


def _runs_on(ch: str) -> bool:
    return ch.isascii() and (ch.isalnum() or ch == "-")


def named(question: str, topics: Sequence[str]) -> list[bool]:
    """For each (lower-case) topic name, whether the question names it: the name itself, or its words."""
    low = _low(question)
    asked = {e.topic: e.asked(low) for e in vocabulary()}
    out = []
    for topic in topics:
        entry = _entry(topic)
        out.append(
            (topic != "general" and _mentions(low, topic))
            or (entry is not None and (asked[entry.topic] or (entry.rest and _mentions(low, entry.rest_of(topic)))))
        )
    return out


def latest(question: str, topics: Sequence[str]) -> list[bool]:
    """For each (lower-case) topic name, whether the question asks for the newest memory of its family."""
    low = _low(question)
    asked = [e for e in vocabulary() if e.latest is not None and e.latest.search(low)]
    return [any(e.covers(t) for e in asked) for t in topics]
