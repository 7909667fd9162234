"""What the companion knows about the game being played, found for the moment: the game's built-in tips (handed in
by the session from the game plugin) and the player's own guides (kibitz.memory.guides).

- After an event a friend would follow with a tip (the same thing went wrong again, a stall: core.knowledge), the
  tip about what the event was about: the enemy that did it, the pit, this level. Each tip once a session.
- For a question, the passages closest to it in meaning (the multilingual embedder: a question in Korean finds an
  English tip), or sharing its words where the embedder is not installed.

Only what the player's spoiler tolerance allows is ever handed out; the companion quotes it to the model as data.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path

import numpy as np

from kibitz.core.config import KnowledgeConfig
from kibitz.core.errors import KibitzError
from kibitz.core.knowledge import Tip, asks_for_advice, event_keys, matches, wants_tip, words
from kibitz.core.records import Event
from kibitz.core.spoiler import rate
from kibitz.memory.embed import TextEmbedder, Vectors
from kibitz.memory.guides import GuideStore

log = logging.getLogger(__name__)

QUESTION_TIPS = 3
QUESTION_CHARS = 600
"""What a question's prompt may spend on knowledge: at most this many tips, and characters."""
NAMED_BONUS, LEVEL_BONUS = 0.03, 0.03
"""Added to a tip's similarity to the question (cosine; the e5 model's scores for a game's tips lie within ~0.1 of
each other) for each thing it is about that the question names, and when it is about the level being played."""
EMBED_WAIT_S = 1.0
"""How long a question waits for the built-in tips' vectors (embedded in the background when a game is followed)
before it falls back on shared words."""


def allowed(tip: Tip, limit: int) -> bool:
    """The tip gives away no more than the player's spoiler tolerance allows (by its class and by its words, as the
    companion's filter rates what it says)."""
    return max(tip.spoiler, rate(tip.text)) <= limit


class GameKnowledge:
    """Tips for the game a session is following (`follow`), for events and for questions."""

    def __init__(
        self,
        builtin: Callable[[str], Sequence[Tip]],
        guides: GuideStore | None = None,
        embedder: TextEmbedder | None = None,
    ) -> None:
        self.builtin = builtin
        self.guides = guides
        self.embedder = embedder
        self.game: str | None = None
        self.level: str | None = None
        self.given: set[str] = set()
        """Tips already given after events this session (never twice)."""

    def follow(self, game: str | None, level: str | None = None) -> None:
        """The game (and level) being played now; the built-in tips' vectors start in the background."""
        self.game, self.level = game, level
        if game is not None and self.embedder is not None:
            _builtin_vectors(self.embedder, tuple(t.text for t in self.builtin(game)))

    def _guide_tips(self) -> tuple[list[Tip], Vectors | None]:
        if self.guides is None or self.game is None:
            return [], None
        try:
            tips, vectors = self.guides.sections_of(self.game)
        except KibitzError as exc:
            log.warning("%s", exc.message)
            return [], None
        return tips, vectors if len(tips) else None

    def for_event(self, event: Event, limit: int) -> Tip | None:
        """The tip a friend would give after this event (None: the event does not call for one, or none fits)."""
        if self.game is None or not wants_tip(event):
            return None
        keys = event_keys(event)
        level = event.facts.level if event.facts is not None and event.facts.level else self.level
        best: tuple[int, Tip] | None = None
        for tip in self.builtin(self.game):
            score = matches(tip, keys, level)
            if score and tip.text not in self.given and allowed(tip, limit) and (best is None or score > best[0]):
                best = (score, tip)
        return None if best is None else best[1]

    def annotate(self, event: Event, limit: int) -> None:
        """Hand the event the tip a friend would follow it with (event.data["tip"]), if there is one."""
        tip = self.for_event(event, limit)
        if tip is not None:
            event.data["tip"] = tip.text

    def gave(self, text: str) -> None:
        """A line gave this tip (it is not given again this session)."""
        self.given.add(text)

    def for_question(self, question: str, limit: int) -> list[Tip]:
        """The tips and guide passages most likely to help answer the question, within the spoiler tolerance; none
        for a question about the state on screen (core.knowledge.asks_for_advice)."""
        if self.game is None:
            return []
        builtin = list(self.builtin(self.game))
        guide, guide_vectors = self._guide_tips()
        candidates = builtin + guide
        if not candidates or not asks_for_advice(question, {a for t in builtin for a in t.about}):
            return []
        scores = self._by_meaning(question, builtin, guide_vectors)
        if scores is None:
            scores = _by_words(question, candidates)
        else:  # a tip about what the question names, or about this very level, goes first among close ones
            asked = words(question)
            scores = [
                s + NAMED_BONUS * min(len(asked & set(t.about)), 2) + (LEVEL_BONUS if self.level in t.levels else 0.0)
                for s, t in zip(scores, candidates, strict=True)
            ]
        ranked = sorted(range(len(candidates)), key=lambda i: -scores[i])
        chosen: list[Tip] = []
        spent = 0
        for i in ranked:
            tip = candidates[i]
            if scores[i] <= 0 or not allowed(tip, limit) or not tip.fits(self.level):
                continue
            if spent + len(tip.text) > QUESTION_CHARS and chosen:
                break
            chosen.append(tip)
            spent += len(tip.text)
            if len(chosen) == QUESTION_TIPS:
                break
        return chosen

    def _by_meaning(self, question: str, builtin: list[Tip], guide_vectors: Vectors | None) -> list[float] | None:
        """Cosine similarity of the question to each candidate (None without the embedder, or when the built-in
        tips' vectors are not ready in time)."""
        if self.embedder is None or self.game is None:
            return None
        parts: list[Vectors] = []
        if builtin:
            future = _builtin_vectors(self.embedder, tuple(t.text for t in builtin))
            try:
                parts.append(future.result(timeout=EMBED_WAIT_S))
            except Exception as exc:  # a slow or failed embedder: shared words instead
                log.warning("Game knowledge falls back on shared words: %s", exc)
                return None
        if guide_vectors is not None:
            parts.append(guide_vectors)
        try:
            query = self.embedder.query(question)
        except Exception as exc:
            log.warning("Game knowledge falls back on shared words: %s", exc)
            return None
        matrix = np.concatenate(parts) if len(parts) > 1 else parts[0]
        return [float(s) for s in matrix @ query]


_VECTORS: dict[tuple[str, tuple[str, ...]], concurrent.futures.Future[Vectors]] = {}
_VECTORS_LOCK = threading.Lock()


def _builtin_vectors(embedder: TextEmbedder, texts: tuple[str, ...]) -> concurrent.futures.Future[Vectors]:
    """The built-in tips' vectors, embedded once a process (in the background, behind any query), shared by every
    session that follows the game."""
    key = (embedder.name, texts)
    with _VECTORS_LOCK:
        future = _VECTORS.get(key)
        if future is None or (future.done() and future.exception() is not None):
            future = _VECTORS[key] = embedder.passages_later(list(texts))
        return future


def open_knowledge(
    config: KnowledgeConfig, builtin: Callable[[str], Sequence[Tip]], guides: bool = True
) -> GameKnowledge:
    """Game knowledge as configured: the built-in tips, the guides indexed on this machine (if any; not with
    `guides=False`, as in the bench, which must not depend on what a user added), and the text embedder when it is
    installed (without it, questions find tips by shared words)."""
    from kibitz.core.errors import ModelError
    from kibitz.memory.embed import shared_embedder
    from kibitz.memory.guides import guides_path

    embedder: TextEmbedder | None = None
    try:
        embedder = shared_embedder(config.embedder)
    except ModelError as exc:  # not installed (an unknown name is the config's error, raised)
        log.info("Game knowledge without the text embedder (%s): questions find tips by shared words.", exc)
    store = None
    path = guides_path()
    if guides and path.exists():
        try:
            store = _shared_store(str(path))
        except KibitzError as exc:
            log.warning("%s", exc.message)
    return GameKnowledge(builtin, store, embedder)


@cache
def _shared_store(path: str) -> GuideStore:
    """One connection to a guides file per process, shared by every session (`kibitz serve` opens many)."""
    return GuideStore(Path(path))


def _by_words(question: str, tips: Sequence[Tip]) -> list[float]:
    """How many of the question's words each tip shares (its text and what it is about)."""
    asked = words(question)
    return [float(len(asked & (words(t.text) | set(t.about)))) for t in tips]
