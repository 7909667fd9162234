"""The contract every game adapter fulfils (Gymnasium-like: reset/step) and the registry of games."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from kibitz.core.records import Frame, Observation, Provenance, Reading, RGBImage
from kibitz.core.registry import Registry


class GameEnv(ABC):
    """A running emulated game: advance one native frame with an action, read its true state."""

    native_fps: float = 60.0

    @abstractmethod
    def reset(self, seed: int) -> RGBImage:
        """Start (or restart) the game and return the first frame."""

    @abstractmethod
    def step(self, action: int) -> RGBImage:
        """Advance one native frame holding the given action and return the new frame."""

    @abstractmethod
    def state(self) -> dict[str, Any]:
        """The true state read from the game itself (RAM), as plain values."""

    @property
    @abstractmethod
    def finished(self) -> bool:
        """True once the game is over and needs a reset."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Free emulator resources."""


class Player(ABC):
    """A built-in player so the game moves without a human."""

    @abstractmethod
    def act(self, state: dict[str, Any], frame_index: int) -> int:
        """The action (controller bits or action index) to hold for the next frame."""


@dataclass(frozen=True, slots=True)
class DetectorSpec:
    """Which detector to run for a game, and its parameters."""

    kind: str
    params: dict[str, Any] = field(default_factory=dict)


class GameAdapter(ABC):
    """Everything kibitz knows about one game."""

    id: str
    title: str
    platform: str
    genre: str
    fields: ClassVar[dict[str, str]]
    """HUD fields this game exposes, with a short description of each."""
    visual_scenes: ClassVar[dict[str, str]] = {}
    """RAM scenes the screen cannot tell apart from another scene (e.g. a dying animation that happens in the
    gameplay view): what pixel perception is expected to call them."""

    blank_scene: ClassVar[str] = "loading"
    """What this game calls a blank screen (black between scenes)."""

    def visual_scene(self, state: dict[str, Any], image: RGBImage | None = None, blank: bool | None = None) -> str:
        """The scene as the screen shows it (what pixel perception learns from and is scored against).

        A blank picture is the game's loading scene whatever the RAM says (the title mode starts on a black
        screen, for instance): nothing on screen tells them apart. Whether the picture is blank is `blank` when
        given (the bench's own test), else perception's `is_blank` (learning).
        """
        if blank is None and image is not None:
            from kibitz.perception.change import is_blank

            blank = is_blank(image)
        if blank:
            return self.blank_scene
        scene = self.scene(state)
        return self.visual_scenes.get(scene, scene)

    @abstractmethod
    def check_installed(self) -> None:
        """Raise a KibitzError with the install command when the game (emulator or ROM) is missing."""

    @abstractmethod
    def make_env(self) -> GameEnv:
        """A new emulator running this game."""

    @abstractmethod
    def make_player(self, seed: int) -> Player:
        """The built-in player."""

    @abstractmethod
    def scene(self, state: dict[str, Any]) -> str:
        """The scene (title, gameplay, dying, transition, game_over...) from the true state."""

    @abstractmethod
    def hud(self, state: dict[str, Any]) -> dict[str, Any]:
        """The HUD fields a player sees (and perception should read), from the true state."""

    @abstractmethod
    def detectors(self) -> list[DetectorSpec]:
        """The events that matter in this game."""

    @abstractmethod
    def describe(self, obs: Observation, precise: bool = False) -> str:
        """A short plain-language account of the current state, for prompts.

        precise=False may leave out values that tick every second (a clock) so the prompt prefix stays cached;
        answers to questions use precise=True.
        """

    def truth(self, state: dict[str, Any]) -> dict[str, Any]:
        """What the true state says beyond the HUD that the session's chronicle uses (what Mario touched, whether he
        fell): fields of the RAM perceiver's observation that pixels never give."""
        return {}

    def level_name(self, obs: Observation) -> str | None:
        """The level being played as the game names it ("World 1-2"), None when unknown or the game has none."""
        return None

    def progress(self, obs: Observation) -> float | None:
        """How far through the current level the player is, 0-1, None when unknown."""
        return None

    def death_cause(self, obs: Observation) -> tuple[str, str | None] | None:
        """How the player died on this observation, if it shows: (cause in a few words, the culprit's name or None)."""
        return None

    def observe(self, frame: Frame) -> Observation:
        """An Observation from the frame's true state (the RAM perceiver)."""
        state = frame.state or {}
        values = {**self.hud(state), **(self.truth(state) if state else {})}
        fields = {k: Reading(v, source=Provenance.RAM) for k, v in values.items()}
        return Observation(
            t=frame.t,
            frame_index=frame.index,
            game=self.id,
            game_confidence=1.0,
            scene=self.scene(state),
            fields=fields,
        )


GAMES: Registry[type[GameAdapter]] = Registry("game")


def get_game(game_id: str) -> GameAdapter:
    """The adapter for a game id, with a clear error listing the known ids."""
    return GAMES.get(game_id)()
