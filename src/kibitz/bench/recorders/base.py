"""Recorders: play one real game deterministically and hand over every frame with its true state.

A recorder is the bench's view of a game with ground truth: what the screen shows (the picture), what a
player would read on it (HUD fields, scene), what just happened (events), and facts for questions and advice
(the killer, the chess position, the monsters in view, the next useful achievement). The dataset builder
(`kibitz.bench.dataset`) samples frames, clips, questions and advice items from these streams; recorders never
write files and never ship game data.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any, ClassVar

import yaml

from kibitz.core.events import event_types, scored
from kibitz.core.records import RGBImage
from kibitz.core.registry import Registry

EVENT_TYPES: dict[str, str] = {name: t.meaning for name, t in event_types().items() if t.scored or name == "damage"}
"""The event vocabulary of the bench's ground truth (core/data/events.yaml; stacks may report others, which are
not scored)."""

SCORED_EVENTS = scored()


def one_colour(image: RGBImage) -> bool:
    """The bench's truth of a blank frame: every pixel the same colour (nothing on screen to read or recognise)."""
    flat = image.reshape(-1, image.shape[-1]) if image.ndim == 3 else image.reshape(-1, 1)
    return bool((flat == flat[0]).all())


@cache
def _hud_labels() -> dict[str, dict[str, list[str]]]:
    text = (resources.files("kibitz.bench") / "prompts" / "hud_shown.yaml").read_text(encoding="utf-8")
    data: dict[str, dict[str, list[str]]] = yaml.safe_load(text)
    return data


def hud_shown(game: str) -> dict[str, tuple[str, ...]]:
    """Labelled truth: the scenes in which `game` draws each HUD number ({} for a game without labels)."""
    return {name: tuple(scenes) for name, scenes in _hud_labels().get(game, {}).items()}


"""The events the events task scores: what a companion should notice. Damage is kept in the truth (the judges
see it) but not scored: a companion is not expected to remark on every hit."""


@dataclass(slots=True)
class TrueFrame:
    """One frame of a real game with what is true at that moment."""

    t: float
    """Seconds of game time since the run started."""
    image: RGBImage
    """H×W×3 uint8 RGB, as a player sees it (a copy the recorder will not overwrite)."""
    scene: str
    """gameplay, title, menu, transition, game_over, death, map, ... (what the screen shows)."""
    hud: dict[str, Any]
    """The values a player can read on this frame (fields the screen does not show are left out)."""
    events: list[str] = field(default_factory=list)
    """EVENT_TYPES that happened on this frame (at most a frame late)."""
    facts: dict[str, Any] = field(default_factory=dict)
    """Other true facts, JSON-serialisable (used by questions() and advice())."""


@dataclass(frozen=True, slots=True)
class QA:
    """A question about the state with its exact answer(s)."""

    question: str
    answers: tuple[str, ...]
    """Accepted answers; a reply is right when it contains one of them (numbers as whole numbers)."""
    kind: str
    """count, name, yes_no, ... (for reporting per kind)."""
    options: tuple[str, ...] = ()
    """Every answer the question allows, the right ones included, when they are few (yes/no, white/black, the six
    pieces): a reply that names a wrong option beside the right one has not answered."""


@dataclass(frozen=True, slots=True)
class AdviceKey:
    """What a useful piece of advice names here, from the game's own truth."""

    kind: str
    """chess_move (Stockfish's top moves), achievement (a useful next Crafter achievement), threat (a monster)."""
    good: tuple[str, ...]
    """Names that count as useful: SAN moves, achievement words, monster names (matched case-insensitively)."""
    question: str = "What should I do now?"
    facts: dict[str, Any] = field(default_factory=dict)
    """Extra truth for the report (e.g. Stockfish's evaluation)."""


NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


def count_answers(n: int) -> tuple[str, ...]:
    """A count as digits and, for small numbers, as a word ("3", "three")."""
    return (str(n), NUMBER_WORDS[n]) if 0 <= n < len(NUMBER_WORDS) else (str(n),)


def hud_questions(hud: dict[str, Any], asks: dict[str, str]) -> list[QA]:
    """A count question for every HUD field on screen that has one ({field: question})."""
    return [QA(q, count_answers(hud[k]), "count") for k, q in asks.items() if isinstance(hud.get(k), int)]


class Recorder(ABC):
    """One real game with true state, played by a built-in player."""

    game: ClassVar[str]
    """Id used in the dataset (a built-in kibitz game id where one exists, e.g. smb, breakout)."""
    title: ClassVar[str]
    genre: ClassVar[str]
    """platformer, atari-arcade, fps, roguelike, survival-crafting, chess, ..."""
    fps: ClassVar[float]
    """Frames per second of game time the recorder yields."""
    clip_fps: ClassVar[float] = 15.0
    """Frames per second kept in stored clips (every frame when fps ≤ clip_fps)."""
    install_hint: ClassVar[str] = ""
    """The command that installs what this recorder needs (shown when check_installed fails)."""
    hud_labels: ClassVar[dict[str, tuple[str, ...]]] = {}
    """How each HUD field is labelled on screen ("hp": ("HP",)), for readers that look for labels."""

    @abstractmethod
    def check_installed(self) -> None:
        """Raise a KibitzError naming the install command when the game package is missing."""

    @abstractmethod
    def frames(self, seed: int, seconds: float) -> Iterator[TrueFrame]:
        """Play from a fresh start (deterministic for a seed) and yield every frame up to `seconds`."""

    def questions(self, frame: TrueFrame, rng: random.Random) -> list[QA]:
        """Questions a player could ask on this frame, with exact answers from the truth."""
        return []

    def advice(self, frame: TrueFrame) -> AdviceKey | None:
        """The answer key for "what should I do now?" on this frame, where the game has one."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook
        """Free the emulator."""


RECORDERS: Registry[type[Recorder]] = Registry("bench game")
