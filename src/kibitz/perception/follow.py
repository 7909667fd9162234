"""Which game the screen shows over time: a game is followed only on consistent evidence, and dropped without it.

One picture is weak evidence: a frame of an unknown game can sit close to some known game's examples now and
then. So a game is followed (its HUD read, its detectors run, its name in prompts) only after `follow_after`
recognitions in a row name it, and dropped after `drop_after` recognitions in a row do not. Frames that carry
no evidence — blank or near-uniform, text only (a title card, a terminal, a menu look alike in every game) —
neither start nor end a game: SMB's "WORLD 1-1" card keeps SMB, a game-over card of another game starts nothing.
A followed game is kept (not missed) by a frame whose nearest example is that game and that falls short of its
acceptance by at most `keep_slack`: a part of the game its few examples do not show well (a game added from five
pictures) is still that game once the player is known to play it; starting to follow still needs full acceptance.
Every change is logged with its reason (logger "kibitz.follow").
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from kibitz.perception.classifier import PrototypeBank, Recognition, Vectors

log = logging.getLogger("kibitz.follow")


@dataclass
class GameFollower:
    follow_after: int = 3
    """Recognitions in a row that must name a game before it is followed (recognition runs every 0.5 s)."""
    drop_after: int = 3
    """Recognitions in a row that must not name the followed game before it is dropped."""
    keep_slack: float = 0.05
    """How far under the followed game's acceptance a frame nearest to it may be and still keep it."""
    game: str | None = None
    """The game followed now."""
    confidence: float = 0.0
    """The last confidence of a recognition that named the followed game."""
    candidate: str | None = None
    streak: int = 0
    misses: int = 0
    last_reason: str = ""

    def update(self, rec: Recognition | None, blank: bool = False) -> str | None:
        """Take one recognition (None: nothing to recognise with) of a frame; the game followed after it."""
        if rec is None or blank or rec.text_only:
            self._note("blank screen" if blank else rec.reason if rec is not None else "no recognition")
            return self.game  # no evidence either way
        named = rec.game
        close = named is None and rec.nearest is not None and rec.similarity >= rec.threshold - self.keep_slack
        if self.game is not None and close and rec.nearest == self.game:
            self.misses = 0  # nearly this game's look, and the player is playing it: keep it
            return self.game
        if named is not None and named == self.game:
            self.misses, self.confidence = 0, rec.game_confidence
            self.candidate, self.streak = named, self.streak + 1
            return self.game
        if self.game is not None:
            self.misses += 1
            if self.misses >= self.drop_after:
                log.info(
                    "Stopped following %s: %d recognitions in a row did not show it (last: %s).",
                    self.game,
                    self.misses,
                    rec.reason or f"looks like {named}",
                )
                self.game, self.confidence, self.misses = None, 0.0, 0
        if named is None:
            self.candidate, self.streak = None, 0
            self._note(rec.reason)
            return self.game
        self.streak = self.streak + 1 if named == self.candidate else 1
        self.candidate = named
        if self.game is None and self.streak >= self.follow_after:
            self.game, self.confidence, self.misses = named, rec.game_confidence, 0
            log.info("Following %s: %d recognitions in a row showed it.", named, self.streak)
        return self.game

    def _note(self, reason: str) -> None:
        """Log why a frame named no game, once per kind of reason (not every frame)."""
        kind = reason.split(" (")[0]
        if kind and kind != self.last_reason:
            log.info("No game named: %s.", reason)
            self.last_reason = kind

    def reset(self) -> None:
        self.game, self.confidence, self.candidate, self.streak, self.misses = None, 0.0, None, 0, 0


@dataclass
class LookLearner:
    """While a game is followed, a frame that the game's examples fully accept but none of them shows closely (a new
    part of a level, another colour of the sea) becomes one more example of the game for the rest of the session, so
    the next frames of that part are recognised too: five pictures given to `kibitz games add` cannot show a whole
    game. It learns only on full acceptance (never on a frame kept by `keep_slack`, a blank or a text-only one), at
    most `most` examples a game, and the examples count for the game, not for a scene (`PrototypeBank.with_example`).
    `novelty` 0.9 was chosen on the dev seeds (`--seed 2`: learnt on run 2, scored on run 3; 5-shot followed 94.0 %
    → 97.8 %, unknown games' frames claimed 114 → 119 of 7,680) and scored on the default seed once."""

    novelty: float = 0.9
    """A frame at least this similar to one of the game's examples already looks like them: nothing to learn."""
    most: int = 64
    """At most this many examples learnt per game and session."""
    learnt: dict[str, int] = field(default_factory=dict)

    def learn(
        self, bank: PrototypeBank, vector: Vectors, rec: Recognition, followed: str | None, blank: bool = False
    ) -> PrototypeBank:
        """The bank to recognise the next frames with: `bank`, or `bank` and this frame as an example of `followed`."""
        if followed is None or blank or rec.text_only or rec.game != followed or rec.similarity >= self.novelty:
            return bank
        count = self.learnt.get(followed, 0)
        if count >= self.most:
            return bank
        self.learnt[followed] = count + 1
        log.debug("Learnt a new look of %s (nearest example at %.2f; %d so far).", followed, rec.similarity, count + 1)
        return bank.with_example(vector, followed)
