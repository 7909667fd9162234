"""Event detectors: each watches a stream of Observations and emits debounced Events.

A detector is chosen by name (DETECTORS registry) with parameters from the game adapter, so adding an
event to a game is data, not a new branch. Every detector needs a change to hold for `confirm` frames
before it fires, so one flickering frame never makes an event.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterable
from typing import Any

from kibitz.core.events import event_types, priority
from kibitz.core.records import Event, Observation
from kibitz.core.registry import Registry

PRIORITY = {name: t.priority for name, t in event_types().items()}
"""Each event type's priority (core/data/events.yaml)."""

PLAYING = ("gameplay", "dying", "transition", "level_end")


class Detector(ABC):
    """Turns observations into events."""

    @abstractmethod
    def update(self, obs: Observation) -> list[Event]:
        """Consume one observation; return the events it completes (usually none)."""

    def _event(self, obs: Observation, type_: str, summary: str, **data: Any) -> Event:
        return Event(t=obs.t, type=type_, priority=priority(type_), summary=summary, data=data, game=obs.game)


class Confirmed:
    """A value that must be seen `confirm` times in a row before it is believed."""

    def __init__(self, confirm: int) -> None:
        self.confirm = max(1, confirm)
        self.value: Any = None
        self._candidate: Any = None
        self._count = 0

    def feed(self, value: Any) -> bool:
        """Feed a sample; True when the believed value changed."""
        if value == self.value:
            self._candidate, self._count = None, 0
            return False
        if value == self._candidate:
            self._count += 1
        else:
            self._candidate, self._count = value, 1
        if self._count >= self.confirm:
            self.value, self._candidate, self._count = value, None, 0
            return True
        return False


class DeathDetector(Detector):
    """One death per life lost: fires when the dying flag holds (early), or when lives drop (fallback).

    `level` names the fields of the level (world, stage) for games that show the lives only on a card between
    lives (Super Mario Bros.): watched from the middle of a level, the first card that shows the same level
    that was being played is a death (a new level would show another one).
    """

    def __init__(
        self,
        lives: str = "lives",
        dying: str | None = None,
        confirm: int = 2,
        level: list[str] | None = None,
        zero_only: bool = False,
    ) -> None:
        self.lives_field, self.dying_field = lives, dying
        self.zero_only = zero_only
        """The field is health, not lives: only a fall to zero is a death."""
        self.dying = Confirmed(confirm)
        self.lives = Confirmed(confirm)
        self.armed = True
        self.level_fields = level
        self.played: tuple[Any, ...] | None = None
        """The level seen in play while the lives count was still unknown."""

    def update(self, obs: Observation) -> list[Event]:
        events: list[Event] = []
        lives = obs.value(self.lives_field)
        if self.level_fields and self.lives.value is None:
            level = tuple(obs.value(f) for f in self.level_fields)
            if lives is None and obs.scene == "gameplay" and None not in level:
                self.played = level
            elif lives is not None and self.played is not None and level == self.played and self.armed:
                self.armed, self.played = False, None
                events.append(self._death(obs, lives, early=False))
        dying_changed = self.dying_field is not None and self.dying.feed(bool(obs.value(self.dying_field, False)))
        if dying_changed and self.dying.value and self.armed:
            self.armed = False
            events.append(self._death(obs, lives, early=True))
        if obs.scene == "game_over" and self.armed and self.lives.value not in (None, 0):
            # Seen from pixels, the last life's loss shows as the game-over screen (no lives card follows).
            self.armed = False
            events.append(self._death(obs, 0, early=False))
        if lives is not None:
            before = self.lives.value
            if self.lives.feed(lives):
                lost = before is not None and ((lives < before and not self.zero_only) or (before > 0 and lives <= 0))
                if lost and self.armed and obs.scene != "title":
                    events.append(self._death(obs, lives, early=False))
                self.armed = True  # a new life (or a new game) re-arms the detector
        return events

    def _death(self, obs: Observation, lives: Any, early: bool) -> Event:
        if early and isinstance(lives, int):
            lives -= 1  # the counter drops a few seconds after the death animation starts
        if lives is None:
            left = "lives unknown"
        elif lives <= 0:
            left = "no lives left"
        else:
            left = "1 life left" if lives == 1 else f"{lives} lives left"
        return self._event(obs, "death", f"The player just died ({left}).", lives_left=lives)


class GameOverDetector(Detector):
    """The game-over screen appears."""

    def __init__(self, confirm: int = 2) -> None:
        self.scene = Confirmed(confirm)

    def update(self, obs: Observation) -> list[Event]:
        if self.scene.feed(obs.scene == "game_over") and self.scene.value:
            return [self._event(obs, "game_over", "Game over: the player ran out of lives.")]
        return []


class SceneEnteredDetector(Detector):
    """The screen enters a scene that is itself an event and stays in it for `hold_s` seconds (generic mode: a death
    screen is a death, a game-over screen a game over, in any game whose scenes perception can name). Entering it
    again counts only after the screen has shown something else for as long."""

    def __init__(self, scene: str, type: str, summary: str, hold_s: float = 1.0) -> None:
        self.scene, self.type, self.summary, self.hold_s = scene, type, summary, hold_s
        self.since: float | None = None
        """When the screen entered the scene (or left it, while `inside`)."""
        self.inside = False

    def update(self, obs: Observation) -> list[Event]:
        if obs.scene == "unknown":
            return []
        if (obs.scene == self.scene) != self.inside:  # crossing: held long enough?
            if self.since is None:
                self.since = obs.t
            if obs.t - self.since >= self.hold_s:
                self.inside, self.since = not self.inside, None
                if self.inside:
                    return [self._event(obs, self.type, self.summary, scene=self.scene)]
        else:
            self.since = None
        return []


class GameStartDetector(Detector):
    """Play starts from the title screen."""

    def __init__(self, confirm: int = 2) -> None:
        self.scene = Confirmed(confirm)
        self.seen_title = False

    def update(self, obs: Observation) -> list[Event]:
        if obs.scene == "title":
            self.seen_title = True
        if self.scene.feed(obs.scene in PLAYING) and self.scene.value and self.seen_title:
            self.seen_title = False
            return [self._event(obs, "game_start", "A new game just started.")]
        return []


class LevelChangeDetector(Detector):
    """A tuple of fields (world, stage) changes during play."""

    def __init__(self, fields: list[str], confirm: int = 3) -> None:
        self.fields = fields
        self.level = Confirmed(confirm)

    def update(self, obs: Observation) -> list[Event]:
        if obs.scene in ("title", "game_over"):
            self.level = Confirmed(self.level.confirm)  # a new game starting at 1-1 is not a level change
            return []
        if obs.scene not in PLAYING:
            return []
        level = tuple(obs.value(f) for f in self.fields)
        if None in level or any(obs.fields[f].confidence < 1.0 for f in self.fields):
            return []  # only values read on this very frame: a held one may belong to the previous game
        before = self.level.value
        if self.level.feed(level) and before is not None:
            name = "-".join(str(v) for v in level)
            return [
                self._event(
                    obs,
                    "level_change",
                    f"The player reached level {name}.",
                    level=name,
                    previous="-".join(str(v) for v in before),
                )
            ]
        return []


class StreakDetector(Detector):
    """A field goes up `count` times within `window_s` seconds (a coin streak, a combo)."""

    def __init__(self, field: str, count: int = 4, window_s: float = 8.0, type: str = "streak") -> None:
        self.field, self.count, self.window_s, self.type = field, count, window_s, type
        self.value = Confirmed(1)
        self.hits: deque[float] = deque()

    def update(self, obs: Observation) -> list[Event]:
        value = obs.value(self.field)
        if value is None:
            return []
        before = self.value.value
        if not self.value.feed(value) or before is None or value <= before:
            return []
        self.hits.append(obs.t)
        while self.hits and obs.t - self.hits[0] > self.window_s:
            self.hits.popleft()
        if len(self.hits) >= self.count:
            n = len(self.hits)
            self.hits.clear()
            return [self._event(obs, self.type, f"{n} {self.field} in a few seconds: a streak!", count=n, total=value)]
        return []


class StallDetector(Detector):
    """No forward progress for `after_s` seconds of play."""

    def __init__(self, progress: str, after_s: float = 12.0, min_gain: int = 16) -> None:
        self.field, self.after_s, self.min_gain = progress, after_s, min_gain
        self.best: float | None = None
        self.since: float | None = None
        self.fired = False

    def update(self, obs: Observation) -> list[Event]:
        value = obs.value(self.field)
        if obs.scene != "gameplay" or value is None:
            self.since = None  # deaths, menus and transitions are not stalls
            self.best = None
            return []
        if self.best is None or value > self.best + self.min_gain or value < self.best - 256:
            self.best, self.since, self.fired = value, obs.t, False
            return []
        assert self.since is not None
        if not self.fired and obs.t - self.since >= self.after_s:
            self.fired = True
            stuck = round(obs.t - self.since)
            return [self._event(obs, "stall", f"The player has made no progress for {stuck} seconds.", seconds=stuck)]
        return []


class NearMissDetector(Detector):
    """A close call: something dangerous came within touching distance (a truth field naming it, e.g. SMB's
    `touching`) and, `window_s` later, the player has lost no life, is not dying, and scored nothing from it (a stomp
    is no near miss). One per contact: the field must clear before the next one counts."""

    def __init__(
        self,
        field: str,
        lives: str = "lives",
        dying: str = "dying",
        score: str = "score",
        hurt: str = "big",
        window_s: float = 1.5,
    ) -> None:
        """`hurt`: a field that changes when a hit costs something short of a life (SMB's big Mario shrinking)."""
        self.field, self.lives, self.dying, self.score, self.window_s = field, lives, dying, score, window_s
        self.hurt = hurt
        self._contact: tuple[float, str, Any, Any, Any] | None = None
        """(when, what, lives, score, `hurt` then) of the contact being watched."""
        self._armed = True

    def update(self, obs: Observation) -> list[Event]:
        what = obs.value(self.field)
        if obs.scene != "gameplay" or obs.value(self.dying):
            self._contact, self._armed = None, what is None
            return []
        if self._contact is None:
            if what is None:
                self._armed = True
            elif self._armed:
                self._contact = (obs.t, str(what), obs.value(self.lives), obs.value(self.score), obs.value(self.hurt))
                self._armed = False
            return []
        start, name, lives, score, hurt = self._contact
        scored = (obs.value(self.score) or 0) > (score or 0)
        if obs.value(self.lives) != lives or obs.value(self.hurt) != hurt or scored:
            self._contact = None  # a life lost, a hit taken, or the enemy stomped: no close call
            return []
        if obs.t - start < self.window_s:
            return []
        self._contact = None
        self._armed = what is None
        return [self._event(obs, "near_miss", f"A {name} nearly got the player.", culprit=name)]


class LowValueDetector(Detector):
    """A field falls below a threshold during play (time running out, low health)."""

    def __init__(
        self, field: str, below: float, type: str = "low_value", confirm: int = 3, max_fall_per_s: float | None = None
    ) -> None:
        self.field, self.below, self.type = field, below, type
        self.low = Confirmed(confirm)
        self.max_fall_per_s = max_fall_per_s
        self.last: tuple[float, float] | None = None
        self.draining = False

    def update(self, obs: Observation) -> list[Event]:
        value = obs.value(self.field)
        if obs.scene != "gameplay" or value is None or value <= 0:
            return []  # a clock at 0 in play is being reloaded for a new level, not running out
        last, self.last = self.last, (obs.t, value)
        if self.max_fall_per_s is not None and last is not None and value != last[1]:
            # Falling faster than the field ever runs down in play: a bonus count (SMB's clock turned into
            # points at the flagpole), not the clock running out; until the value goes back up.
            self.draining = value < last[1] and (last[1] - value) / max(obs.t - last[0], 1e-3) > self.max_fall_per_s
        if self.draining:
            return []
        if self.low.feed(value < self.below) and self.low.value:
            return [
                self._event(obs, self.type, f"{self.field.capitalize()} is running low: {value} left.", value=value)
            ]
        return []


class MilestoneDetector(Detector):
    """A counter passes a multiple of `every` (score milestones)."""

    def __init__(self, field: str, every: int, confirm: int = 2, min_gap_s: float = 10.0) -> None:
        self.field, self.every, self.min_gap_s = field, every, min_gap_s
        self.bucket = Confirmed(confirm)
        self.last_t: float | None = None
        self.pending_mark: int | None = None

    def update(self, obs: Observation) -> list[Event]:
        value = obs.value(self.field)
        if value is None or obs.scene == "title":
            return []
        before = self.bucket.value
        if self.bucket.feed(value // self.every) and before is not None and self.bucket.value > before:
            self.pending_mark = self.bucket.value * self.every
        # A burst (a level-end bonus counting up) crosses several marks in seconds: report the highest, once.
        if self.pending_mark is not None and (self.last_t is None or obs.t - self.last_t >= self.min_gap_s):
            mark, self.pending_mark, self.last_t = self.pending_mark, None, obs.t
            return [self._event(obs, "score_milestone", f"The {self.field} passed {mark}.", mark=mark, value=value)]
        return []


class SceneChangeDetector(Detector):
    """What the screen shows changes and holds (menu → gameplay, gameplay → death...): generic mode's events."""

    def __init__(self, hold_frames: int = 30, ignore: tuple[str, ...] = ("unknown",)) -> None:
        self.scene = Confirmed(hold_frames)
        self.ignore = ignore

    def update(self, obs: Observation) -> list[Event]:
        if obs.scene in self.ignore:
            return []
        before = self.scene.value
        if self.scene.feed(obs.scene) and before is not None:
            summary = f"The screen changed from {before} to {obs.scene}."
            return [self._event(obs, "scene_change", summary, before=before, after=obs.scene)]
        return []


TEXT_KEYWORDS: dict[str, list[str]] = {
    "game_over": ["game over", "you lose", "you lost", "continue?"],
    # Not "you kill" / "you destroy": those are NetHack's own messages, and NetHack is an unseen game of the bench.
    "kill": ["you defeat"],
    "death": ["dead", "died", "you died", "killed", "wasted", "deaths"],
    "level_change": ["level complete", "stage clear", "level up", "you win", "victory", "completed"],
}
TEXT_EVENT_SUMMARY = {
    "game_over": "The screen says the game is over.",
    "kill": "The screen says the player defeated an enemy.",
    "death": "The screen says the player died.",
    "level_change": "The screen announces a level cleared or a win.",
}


class TextChangeDetector(Detector):
    """New text appears on screen (a status line, a dialogue, "GAME OVER") — read by OCR in generic mode.

    The event's summary never quotes the text: screen text is untrusted and reaches prompts only inside
    the quoted state block.
    """

    def __init__(self, min_gap_s: float = 5.0, memory: int = 200, keywords: dict[str, list[str]] | None = None) -> None:
        self.keywords = keywords if keywords is not None else TEXT_KEYWORDS
        self.min_gap_s = min_gap_s
        self.seen: deque[str] = deque(maxlen=memory)
        self.last_t: float | None = None
        self.first = True

    def update(self, obs: Observation) -> list[Event]:
        # Novelty is by word, with numbers left out: a ticking clock ("[1:14] Marked: 0/10") or OCR cutting a
        # line differently ("Game Type Help" / "Game", "Type Help") is not new text.
        fresh = []
        for line in obs.text:
            line_words = set(re.findall(r"[^\W\d_]{2,}", line.lower()))
            new = line_words - set(self.seen)
            if new:
                fresh.append(line.lower())
                self.seen.extend(sorted(new))
        if not fresh:
            return []
        if self.first:  # the first reading is the starting picture, not a change
            self.first = False
            return []
        # Words any game uses for its big moments: never held back by the gap below (a mine going off two
        # seconds after the status bar changed is still a death, and its words would not be new again).
        for kind, words in self.keywords.items():
            if any(re.search(rf"\b{re.escape(w)}\b", line) for line in fresh for w in words):
                self.last_t = obs.t
                return [self._event(obs, kind, TEXT_EVENT_SUMMARY[kind], from_text=True)]
        if self.last_t is not None and obs.t - self.last_t < self.min_gap_s:
            return []
        self.last_t = obs.t
        n = len(fresh)
        summary = "New text appeared on screen." if n == 1 else f"{n} new lines of text appeared on screen."
        return [self._event(obs, "text_change", summary, lines=n)]


GENERIC_DETECTORS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("scene_change", {}),
    ("game_over", {}),
    ("scene_entered", {"scene": "death", "type": "death", "summary": "The screen shows the player's death."}),
    ("text_change", {}),
)
"""What any screen gets when no game adapter is known: (detector, parameters)."""

LEVEL_FIELDS = ("depth", "floor", "world", "stage", "area")
"""Field names that mean the level being played (not NetHack's own "dlvl": NetHack is an unseen game of the bench)."""


def labelled_detectors(fields: Iterable[str]) -> list[tuple[str, dict[str, Any]]]:
    """Detectors for numbers read by their on-screen labels in generic mode, chosen by the field's name:
    lives (a life lost), hp/health (a fall to zero), a level field (a new level). Read every few seconds by
    OCR, one reading is enough to believe."""
    out: list[tuple[str, dict[str, Any]]] = []
    for name in fields:
        low = name.lower()
        if low == "lives":
            out.append(("death", {"lives": name, "confirm": 1}))
        elif low in ("hp", "health"):
            out.append(("death", {"lives": name, "confirm": 1, "zero_only": True}))
        elif low in LEVEL_FIELDS:
            out.append(("level_change", {"fields": [name], "confirm": 1}))
    return out


DETECTORS: Registry[type[Detector]] = Registry("detector")
DETECTORS.register("death", DeathDetector, "a life lost")
DETECTORS.register("game_over", GameOverDetector, "the game-over screen")
DETECTORS.register("game_start", GameStartDetector, "play starts from the title")
DETECTORS.register("scene_entered", SceneEnteredDetector, "the screen enters a scene that is an event (a death screen)")
DETECTORS.register("level_change", LevelChangeDetector, "a new level or area")
DETECTORS.register("near_miss", NearMissDetector, "something dangerous came within touching distance, and missed")
DETECTORS.register("streak", StreakDetector, "a counter rising quickly (coins)")
DETECTORS.register("stall", StallDetector, "no progress for a while")
DETECTORS.register("low_value", LowValueDetector, "a value running low (time, health)")
DETECTORS.register("milestone", MilestoneDetector, "a score milestone")
DETECTORS.register("scene_change", SceneChangeDetector, "the screen's scene changes and holds (generic mode)")
DETECTORS.register("text_change", TextChangeDetector, "new text on screen, read by OCR (generic mode)")
