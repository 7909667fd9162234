"""The session's chronicle: what the player has done so far this session, added to each event as typed facts.

The detectors say *that* the player died; the chronicle says how (the game's truth: fell into a pit, ran into a
Goomba), where (how far through the level), how often (the 3rd death in World 1-2 this session), how long the life
lasted and what it scored, how this try compares with the session's best there — and reports a new personal best
in a level as an event of its own. A model cannot invent these particulars; handed them, even a small one names
them (measured by `kibitz bench lines`).
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, replace
from typing import Any

from kibitz.core.events import priority
from kibitz.core.facts import particulars, with_particulars
from kibitz.core.records import Event, Facts, Observation
from kibitz.games.base import GameAdapter

RECORD_MARGIN = 0.05
"""How far (a share of the level) past the session's best in a level a try must get to be a new best."""
CAUSE_LOOKBACK = 30
"""How many observations before a death the chronicle looks back through for what caused it (the culprit may have
moved off Mario by the time the dying animation is confirmed)."""
NEW_LIFE_SCENES = ("title", "game_over")


@dataclass
class _Life:
    """The life being played."""

    start_t: float | None = None
    start_score: int | None = None
    best: float | None = None
    """The furthest through the current level in this life."""
    recorded: bool = False
    """A new best in this level was already reported in this life."""


class Chronicle:
    """Keeps this session's tallies and bests, and gives every event the facts they make (`update`)."""

    def __init__(self, game: GameAdapter | None = None, level_fields: list[str] | None = None) -> None:
        self.game = game
        self.level_fields = level_fields or []
        self.counts: Counter[str] = Counter()
        """Events of each type this session."""
        self.here: Counter[tuple[str, str]] = Counter()
        """Events of each type per level (type, level)."""
        self.visits: Counter[str] = Counter()
        """Times each level was reached."""
        self.level_best: dict[str, float] = {}
        """The furthest through each level on an earlier life this session."""
        self.best_score: int | None = None
        """The best final score of this session's games so far."""
        self.level: str | None = None
        self.level_start: float | None = None
        self.game_start: float | None = None
        self.life = _Life()
        self._needs_life = True
        self._new_game = False
        self.recent: deque[Observation] = deque(maxlen=CAUSE_LOOKBACK)

    def follow(self, game: GameAdapter | None, level_fields: list[str]) -> None:
        """Another game is on screen: its own facts from here on (the tallies start again)."""
        self.__init__(game, level_fields)  # type: ignore[misc]

    def _level_of(self, obs: Observation) -> str | None:
        if not self.level_fields:
            return None
        values = [obs.value(f) for f in self.level_fields]
        return None if None in values else "-".join(str(v) for v in values)

    def update(self, obs: Observation, events: list[Event]) -> list[Event]:
        """The events seen on this observation with their facts, and any new personal best it makes."""
        self.recent.append(obs)
        level = self._level_of(obs)
        if level is not None and obs.scene == "gameplay" and (self.level is None or self._new_game):
            # The first level seen, or the one a new game starts in (no level-change event marks it).
            self._new_game = False
            self.level, self.level_start = level, obs.t
            self.visits[level] += 1
        out = [self._annotate(e, obs) for e in events]
        if not any(e.type in ("death", "game_over") for e in events):  # the next life starts on a later picture
            out += self._follow_play(obs)
        return out

    def _follow_play(self, obs: Observation) -> list[Event]:
        """Start lives, follow how far this life got, and report a new best in a level where the player died."""
        if obs.scene in NEW_LIFE_SCENES:
            self._needs_life = self._new_game = True
            return []
        if obs.scene != "gameplay":
            return []
        score = obs.value("score")
        if self._needs_life:
            self._needs_life = False
            self.life = _Life(start_t=obs.t, start_score=score if isinstance(score, int) else None)
            if self.game_start is None:
                self.game_start = obs.t
        progress = self._progress(obs)
        if progress is None or self.level is None:
            return []
        self.life.best = progress if self.life.best is None else max(self.life.best, progress)
        best = self.level_best.get(self.level)
        died_here = self.here[("death", self.level)]
        if best is None or not died_here or self.life.recorded or progress < best + RECORD_MARGIN:
            return []
        self.life.recorded = True
        name = self._level_name(obs)
        facts = Facts(level=self.level, progress=progress, best_progress=best, nth_here=died_here)
        summary = f"The player just got further into {name} than on any earlier try this session."
        return [self._event(obs, "record", summary, facts)]

    def _annotate(self, event: Event, obs: Observation) -> Event:
        handler = _ANNOTATE.get(event.type)
        if handler is None or event.facts.known():
            return event
        facts = handler(self, event, obs)
        details = tuple(particulars(event.type, facts, self._level_name(obs)))
        summary = with_particulars(event.summary, details)
        return replace(event, facts=facts, details=details, summary=summary, headline=event.summary)

    def _level_name(self, obs: Observation) -> str:
        name = self.game.level_name(obs) if self.game is not None else None
        return name or (f"level {self.level}" if self.level else "")

    def _event(self, obs: Observation, type_: str, summary: str, facts: Facts) -> Event:
        details = tuple(particulars(type_, facts, self._level_name(obs)))
        return Event(
            t=obs.t,
            type=type_,
            priority=priority(type_),
            summary=with_particulars(summary, details),
            game=obs.game,
            facts=facts,
            details=details,
            headline=summary,
        )

    def _progress(self, obs: Observation) -> float | None:
        return self.game.progress(obs) if self.game is not None else None

    def _cause(self) -> tuple[str, str | None] | None:
        """What caused the death: the latest observation before it that shows a cause."""
        if self.game is None:
            return None
        for seen in reversed(self.recent):
            cause = self.game.death_cause(seen)
            if cause is not None:
                return cause
        return None

    def _death(self, event: Event, obs: Observation) -> Facts:
        self.counts["death"] += 1
        level = self.level
        if level is not None:
            self.here[("death", level)] += 1
        cause = self._cause()
        score = obs.value("score")
        gained = score - self.life.start_score if isinstance(score, int) and self.life.start_score is not None else None
        life = self.life
        facts = Facts(
            cause=cause[0] if cause else None,
            culprit=cause[1] if cause else None,
            level=level,
            progress=life.best if life.best is not None else self._progress(obs),
            nth=self.counts["death"],
            nth_here=self.here[("death", level)] if level is not None else None,
            best_progress=self.level_best.get(level) if level is not None else None,
            lasted_s=obs.t - life.start_t if life.start_t is not None else None,
            gained=gained if gained is not None and gained >= 0 else None,
            score=score if isinstance(score, int) else None,
        )
        if level is not None and life.best is not None:
            self.level_best[level] = max(self.level_best.get(level, 0.0), life.best)
        self._needs_life = True
        return facts

    def _game_over(self, event: Event, obs: Observation) -> Facts:
        self.counts["game_over"] += 1
        score = obs.value("score")
        score = score if isinstance(score, int) else None
        facts = Facts(
            level=self.level,
            nth=self.counts["game_over"],
            score=score,
            best_score=self.best_score,
            lasted_s=obs.t - self.game_start if self.game_start is not None else None,
        )
        if score is not None:
            self.best_score = score if self.best_score is None else max(self.best_score, score)
        self.game_start = None
        self._needs_life = True
        return facts

    def _level_change(self, event: Event, obs: Observation) -> Facts:
        level = str(event.data.get("level") or self._level_of(obs) or "")
        previous = str(event.data.get("previous") or self.level or "") or None
        lasted = obs.t - self.level_start if self.level_start is not None and previous else None
        self.visits[level] += 1
        self.level, self.level_start = level, obs.t
        self.life.best, self.life.recorded = None, False
        self.counts["level_change"] += 1
        return Facts(
            level=level,
            previous=previous,
            lasted_s=lasted,
            first_visit=self.visits[level] == 1,
            nth_here=self.visits[level],
        )

    def _stall(self, event: Event, obs: Observation) -> Facts:
        level = self.level
        return Facts(
            level=level,
            progress=self._progress(obs),
            nth_here=self.here[("death", level)] or None if level is not None else None,
        )

    def _milestone(self, event: Event, obs: Observation) -> Facts:
        score = event.data.get("value")
        return Facts(
            level=self.level,
            score=score if isinstance(score, int) else None,
            lasted_s=obs.t - self.game_start if self.game_start is not None else None,
        )

    def _near_miss(self, event: Event, obs: Observation) -> Facts:
        self.counts["near_miss"] += 1
        culprit = event.data.get("culprit")
        return Facts(
            culprit=str(culprit) if culprit else None,
            level=self.level,
            progress=self._progress(obs),
            nth=self.counts["near_miss"],
        )

    def _game_start(self, event: Event, obs: Observation) -> Facts:
        self.counts["game_start"] += 1
        return Facts(nth=self.counts["game_start"], best_score=self.best_score)

    def _streak(self, event: Event, obs: Observation) -> Facts:
        self.counts[event.type] += 1
        return Facts(level=self.level, nth=self.counts[event.type])


_ANNOTATE: dict[str, Any] = {
    "death": Chronicle._death,
    "game_over": Chronicle._game_over,
    "level_change": Chronicle._level_change,
    "stall": Chronicle._stall,
    "score_milestone": Chronicle._milestone,
    "game_start": Chronicle._game_start,
    "near_miss": Chronicle._near_miss,
    "coin_streak": Chronicle._streak,
    "streak": Chronicle._streak,
}
"""Which facts each event type gets (types not named get none)."""
