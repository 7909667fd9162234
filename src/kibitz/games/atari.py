"""Atari 2600 games through ale-py (ROMs ship inside ale-py); true state is lives, score and RAM."""

from __future__ import annotations

import importlib.util
from typing import Any, ClassVar

import numpy as np

from kibitz.core.errors import KibitzError
from kibitz.core.records import Observation, RGBImage
from kibitz.games.base import DetectorSpec, GameAdapter, GameEnv, Player

INSTALL_HINT = "pip install ale-py==0.12.1"


class ALEEnv(GameEnv):
    native_fps = 60.0

    def __init__(self, rom: str) -> None:
        from ale_py import ALEInterface, LoggerMode, roms

        ALEInterface.setLoggerMode(LoggerMode.Error)
        self.ale = ALEInterface()
        self.ale.setFloat("repeat_action_probability", 0.0)
        self.ale.setInt("frame_skip", 1)
        self._rom_path = roms.get_rom_path(rom)
        self.actions: list[Any] = []
        self.score = 0

    def reset(self, seed: int) -> RGBImage:
        self.ale.setInt("random_seed", seed)
        self.ale.loadROM(str(self._rom_path))  # loadROM applies the seed
        self.actions = list(self.ale.getMinimalActionSet())
        self.ale.reset_game()
        self.score = 0
        return self.ale.getScreenRGB()

    def step(self, action: int) -> RGBImage:
        self.score += int(self.ale.act(self.actions[action % len(self.actions)]))
        return self.ale.getScreenRGB()

    def state(self) -> dict[str, Any]:
        return {
            "lives": int(self.ale.lives()),
            "score": self.score,
            "game_over": bool(self.ale.game_over()),
            "ram": self.ale.getRAM().tolist(),
        }

    @property
    def finished(self) -> bool:
        return bool(self.ale.game_over())


class BreakoutPlayer(Player):
    """Follows the ball with the paddle but reacts late some of the time, so it loses lives now and then."""

    NOOP, FIRE, RIGHT, LEFT = 0, 1, 2, 3

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.sloppy_until = -1

    def act(self, state: dict[str, Any], frame_index: int) -> int:
        ram = state.get("ram") or [0] * 128
        if frame_index % 40 == 0:
            return self.FIRE  # serve the ball when it is not in play
        if frame_index > self.sloppy_until and self.rng.random() < 0.004:
            self.sloppy_until = frame_index + int(self.rng.integers(40, 120))  # daydreams a moment
        if frame_index <= self.sloppy_until:
            return self.NOOP
        paddle, ball = int(ram[72]), int(ram[99])
        if ball > paddle + 14:
            return self.RIGHT
        if ball < paddle + 6:
            return self.LEFT
        return self.NOOP


class RandomFirePlayer(Player):
    """Moves in random bursts and fires often (Space Invaders style)."""

    def __init__(self, seed: int, n_actions: int = 6) -> None:
        self.rng = np.random.default_rng(seed)
        self.n_actions = n_actions
        self.current = 0

    def act(self, state: dict[str, Any], frame_index: int) -> int:
        if frame_index % 12 == 0:
            self.current = int(self.rng.integers(0, self.n_actions))
        return self.current


class AtariAdapter(GameAdapter):
    platform = "Atari 2600"
    rom: ClassVar[str]
    milestone: ClassVar[int]
    death: ClassVar[str | None] = None
    """How a life is lost in this game when there is only one way (Breakout: the ball got past the paddle)."""
    fields: ClassVar[dict[str, str]] = {"score": "score", "lives": "lives left"}

    def check_installed(self) -> None:
        if importlib.util.find_spec("ale_py") is None:
            raise KibitzError(f"{self.title} needs the Arcade Learning Environment: {INSTALL_HINT}")

    def make_env(self) -> ALEEnv:
        self.check_installed()
        return ALEEnv(self.rom)

    def make_player(self, seed: int) -> Player:
        return RandomFirePlayer(seed, n_actions=18)  # taken modulo the game's own action set

    def scene(self, state: dict[str, Any]) -> str:
        if not state:
            return "unknown"
        return "game_over" if state.get("game_over") else "gameplay"

    def hud(self, state: dict[str, Any]) -> dict[str, Any]:
        if not state:
            return {}
        return {"score": state["score"], "lives": state["lives"]}

    def detectors(self) -> list[DetectorSpec]:
        return [
            DetectorSpec("death", {"lives": "lives"}),
            DetectorSpec("game_over", {}),
            DetectorSpec("milestone", {"field": "score", "every": self.milestone}),
        ]

    def death_cause(self, obs: Observation) -> tuple[str, str | None] | None:
        return (self.death, None) if self.death else None

    def describe(self, obs: Observation, precise: bool = False) -> str:
        v = obs.values()
        if not v:
            return f"{self.title} is starting."
        n = v.get("lives")
        lives = "lives unknown" if n is None else ("1 life left" if n == 1 else f"{n} lives left")
        if precise and v.get("score") is not None:
            return f"{self.title}: score {v['score']}; {lives}."
        return f"{self.title}: {lives}."  # the score changes too often to keep the prefix cached


class Breakout(AtariAdapter):
    id = "breakout"
    title = "Breakout"
    genre = "arcade"
    rom = "breakout"
    milestone = 100
    death = "the ball got past the paddle"  # the only way to lose a ball

    def make_player(self, seed: int) -> Player:
        return BreakoutPlayer(seed)


class SpaceInvaders(AtariAdapter):
    id = "space_invaders"
    title = "Space Invaders"
    genre = "shooter"
    rom = "space_invaders"
    milestone = 500
    death = "hit by an invader's shot"  # lives are lost only to the invaders' shots (their landing ends the game)

    def make_player(self, seed: int) -> Player:
        return RandomFirePlayer(seed)


class Seaquest(AtariAdapter):
    id = "seaquest"
    title = "Seaquest"
    genre = "shooter"
    rom = "seaquest"
    milestone = 500


class MsPacman(AtariAdapter):
    id = "ms_pacman"
    title = "Ms. Pac-Man"
    genre = "maze"
    rom = "ms_pacman"
    milestone = 1000


class Freeway(AtariAdapter):
    id = "freeway"
    title = "Freeway"
    genre = "arcade"
    rom = "freeway"
    milestone = 5


class Riverraid(AtariAdapter):
    id = "riverraid"
    title = "River Raid"
    genre = "shooter"
    rom = "riverraid"
    milestone = 1000


class Asteroids(AtariAdapter):
    id = "asteroids"
    title = "Asteroids"
    genre = "shooter"
    rom = "asteroids"
    milestone = 1000
