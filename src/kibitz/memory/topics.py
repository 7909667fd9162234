"""Which of a player's topics a question names, in English or Korean (data/topics.yaml), and which topic families
it asks the newest memory of ("what did I do last time?"): the topic parts of the hybrid search score.

A topic is named in full by its own name or one of its words, and in part or in full by meaning: each topic has
a sentence per language saying what it is (`about`), and a question whose embedding stands out as close to a
topic's sentences (its similarity `SOFT_FROM`..`SOFT_FULL` standard deviations above its mean over all topics)
names that topic by that much. Words are exact and cheap; meaning catches questions no word list foresaw.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources

import numpy as np
import yaml

from kibitz.core.errors import KibitzError
from kibitz.memory.embed import TextEmbedder, Vectors

SOFT_FROM = 1.5
"""A question names a topic by meaning from this many standard deviations above the topics' mean similarity..."""
SOFT_FULL = 2.5
"""...and in full from this many (measured on the memory-qa dev words: seeds 0-2, 87 % -> 94-96 % Recall@5)."""
_ASCII = re.compile(r"[\x00-\x7f]+")


@dataclass(frozen=True, slots=True)
class TopicWords:
    """What names one topic, or a family of topics ("level *")."""

    topic: str
    words: re.Pattern[str] | None
    latest: re.Pattern[str] | None
    rest: bool
    about: tuple[str, ...] = ()
    """What the topic is, one sentence per language (for naming by meaning)."""

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
        unknown = set(entry) - {"topic", "words", "latest", "rest", "about"}
        if unknown:
            raise KibitzError(f"topics.yaml: unknown keys {sorted(unknown)} in {entry.get('topic')!r}.")
        out.append(
            TopicWords(
                topic=str(entry["topic"]).lower(),
                words=_pattern(entry.get("words", [])),
                latest=_pattern(entry.get("latest", [])),
                rest=bool(entry.get("rest", False)),
                about=tuple(str(v) for v in entry.get("about", {}).values()),
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


@lru_cache(maxsize=4)
def _about_vectors(embedder: TextEmbedder) -> tuple[list[str], Vectors]:
    """The `about` sentences' embeddings, and the entry (topic) each belongs to: computed once per embedder and
    kept on disk (~0.5 s to compute; a session's first search, which a question may be waiting for, only reads
    them)."""
    from kibitz.models.store import cache_dir

    owners = [e.topic for e in vocabulary() for _ in e.about]
    texts = [text for e in vocabulary() for text in e.about]
    key = hashlib.sha256("\n".join([embedder.name, *texts]).encode()).hexdigest()[:16]
    path = cache_dir() / "memory" / f"topics-{embedder.name}-{key}.npy"
    with suppress(OSError, ValueError):
        vectors = np.load(path)
        if vectors.shape == (len(texts), embedder.dim):
            return owners, vectors.astype(np.float32)
    vectors = embedder.passages(texts)
    with suppress(OSError):  # a read-only cache only costs the next session the same half second
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        with tmp.open("wb") as f:
            np.save(f, vectors)
        tmp.replace(path)
    return owners, vectors


def by_meaning(vector: Vectors, embedder: TextEmbedder) -> dict[str, float]:
    """How much (0..1) a question's embedding names each vocabulary entry by meaning (see the module docstring)."""
    owners, vectors = _about_vectors(embedder)
    if not owners:
        return {}
    best: dict[str, float] = {}
    for owner, sim in zip(owners, (vectors @ vector).tolist(), strict=True):
        best[owner] = max(best.get(owner, -1.0), sim)
    values = np.array(list(best.values()))
    spread = float(values.std()) or 1.0
    z = (values - values.mean()) / spread
    ramp = np.clip((z - SOFT_FROM) / (SOFT_FULL - SOFT_FROM), 0.0, 1.0)
    return {owner: float(r) for owner, r in zip(best, ramp.tolist(), strict=True) if r > 0}


class TopicMatch:
    """What one question names: for each topic, how much (1 by words, up to 1 by meaning), and the families it
    asks the newest memory of. Built once per search (the stores and the ranking ask it several times)."""

    def __init__(self, question: str, vector: Vectors | None = None, embedder: TextEmbedder | None = None) -> None:
        self.question = question
        self._low = low = _low(question)
        self._asked = {e.topic for e in vocabulary() if e.asked(low)}
        self._latest = [e for e in vocabulary() if e.latest is not None and e.latest.search(low)]
        self.meaning = by_meaning(vector, embedder) if vector is not None and embedder is not None else {}
        self._named: dict[str, float] = {}

    def by_words(self, topic: str) -> bool:
        """Whether the question names this (lower-case) topic by its name or its words."""
        if topic != "general" and _mentions(self._low, topic):
            return True
        entry = _entry(topic)
        return entry is not None and (
            entry.topic in self._asked or (entry.rest and _mentions(self._low, entry.rest_of(topic)))
        )

    def named(self, topics: Sequence[str]) -> list[float]:
        """For each (lower-case) topic name, how much the question names it (0..1)."""
        out = []
        for topic in topics:
            value = self._named.get(topic)
            if value is None:
                entry = _entry(topic)
                value = 1.0 if self.by_words(topic) else self.meaning.get(entry.topic, 0.0) if entry else 0.0
                self._named[topic] = value
            out.append(value)
        return out

    def latest(self, topics: Sequence[str]) -> list[bool]:
        """For each (lower-case) topic name, whether the question asks for the newest memory of its family."""
        return [any(e.covers(t) for e in self._latest) for t in topics]
