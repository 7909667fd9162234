"""Super Mario Bros. on the cynes NES emulator, with its true state read from RAM.

The ROM is the one shipped inside the `gym-super-mario-bros` package (installed with --no-deps); it is
never part of kibitz. RAM addresses and how they were checked: docs/games.md.
"""

from __future__ import annotations

import importlib.util
import itertools
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import yaml

from kibitz.core.errors import KibitzError
from kibitz.core.records import Observation, RGBImage
from kibitz.games.base import DetectorSpec, GameAdapter, GameEnv, Player

# Controller bits, as cynes.NES_INPUT_* (kept here so importing this module does not need cynes).
BTN_RIGHT, BTN_LEFT, BTN_START, BTN_B, BTN_A = 1, 2, 16, 64, 128

INSTALL_HINT = "pip install cynes==0.1.2 && pip install --no-deps gym-super-mario-bros==7.4.0"

MODE_TITLE, MODE_PLAY, MODE_WORLD_END, MODE_GAME_OVER = 0, 1, 2, 3
TILES = 0x0500
POWER_ON_UNINITIALISED = 24
PSTATE_DIES, PSTATE_DYING = 0x06, 0x0B
PSTATE_FLAGPOLE, PSTATE_AUTOWALK = 0x04, 0x05


def rom_path() -> Path | None:
    """The Super Mario Bros. ROM inside the gym-super-mario-bros package, if installed."""
    spec = importlib.util.find_spec("gym_super_mario_bros")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "_roms" / "super-mario-bros.nes"
    return path if path.is_file() else None


def _digits(ram: Any, start: int, count: int) -> int:
    value = 0
    for addr in range(start, start + count):
        value = value * 10 + int(ram[addr]) % 10
    return value


class SMBEnv(GameEnv):
    native_fps = 60.0988

    def __init__(self, rom: Path) -> None:
        import cynes

        self._cynes = cynes
        self._rom = rom
        self.nes = cynes.NES(str(rom))

    def reset(self, seed: int) -> RGBImage:
        # The NES is deterministic; the seed only shapes the built-in player.
        self.nes = self._cynes.NES(str(self._rom))
        # cynes 0.1.2 leaves one byte of its power-on state uninitialised (offset 24 of its save state), so
        # the same inputs played out differently from one process to the next; pin it so a seed is one run.
        power_on = self.nes.save()
        power_on[POWER_ON_UNINITIALISED] = 0
        self.nes.load(power_on)
        # cynes hands back the same buffer every step: copy, so a kept frame is not overwritten by the next one.
        frame: RGBImage = self.nes.step().copy()
        return frame

    def step(self, action: int) -> RGBImage:
        self.nes.controller = action
        frame: RGBImage = self.nes.step().copy()
        if self.nes.has_crashed:
            raise KibitzError("The NES emulator crashed; restart kibitz (the ROM may be damaged: reinstall it).")
        return frame

    def read(self, addr: int) -> int:
        return int(self.nes[addr])

    def state(self) -> dict[str, Any]:
        ram = self.nes
        lives_raw = int(ram[0x075A])
        return {
            "mode": int(ram[0x0770]),
            "player_state": int(ram[0x000E]),
            "y_viewport": int(ram[0x00B5]),
            "task": int(ram[0x0772]),
            "world": int(ram[0x075F]) + 1,
            "stage": int(ram[0x075C]) + 1,
            "lives_raw": lives_raw,
            "x": int(ram[0x006D]) * 256 + int(ram[0x0086]),
            # Six digits at 0x07DD-0x07E2 (hundred-thousands of tens ... tens); the HUD adds a fixed trailing 0.
            # (0x07DE-0x07E3, as some RAM maps give it, reads ten times too much: checked against a stomp = 100.)
            "score": _digits(ram, 0x07DD, 6) * 10,
            "coins": int(ram[0x075E]),
            "time": _digits(ram, 0x07F8, 3),
            "y": int(ram[0x00CE]),
            "big": int(ram[0x0754]) == 0,
            "airborne": int(ram[0x001D]) != 0,
            "enemies": [
                (int(ram[0x006E + i]) * 256 + int(ram[0x0087 + i]), int(ram[0x00CF + i]))
                for i in range(5)
                if ram[0x000F + i]
            ],
            # Each active slot's object id (RAM $16-$1A): which enemy it is (smb.knowledge.yaml).
            "enemy_ids": [int(ram[0x0016 + i]) for i in range(5) if ram[0x000F + i]],
            # The two-screen metatile buffer (13 rows × 16 columns per screen): what the player can run into.
            "tiles": bytes(int(ram[TILES + i]) for i in range(2 * 13 * 16)),
        }

    @property
    def finished(self) -> bool:
        return False  # SMB returns to its title screen by itself; the player presses START again.


def tile_at(tiles: bytes, x: int, row: int) -> int:
    """The metatile at level x (pixels) and row (0-12; ground is rows 11-12) from the two-screen buffer."""
    if not 0 <= row <= 12 or not tiles:
        return 0
    return tiles[((x // 256) % 2) * 208 + row * 16 + (x % 256) // 16]


class SMBPlayer(Player):
    """Runs right holding B and jumps over walls, pits and enemies it sees in RAM, or when stuck.

    Good enough to clear 1-1 most runs and to die regularly later, so sessions see deaths, level changes,
    stalls and game overs. The seed adds a small reaction delay so runs differ.
    """

    HOLD_FRAMES = 20

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.hold = 0
        self.a_prev = False
        self.best_x = 0
        self.best_at = 0
        self.delay = 0

    def _wants_jump(self, s: dict[str, Any], frame_index: int) -> bool:
        x, y, tiles = s["x"], s["y"], s["tiles"]
        top, bottom = (y - 16) // 16, (y + (31 if s.get("big") else 15) - 16) // 16  # tile rows Mario fills
        if any(tile_at(tiles, x + dx, row) for dx in (12, 20, 28) for row in range(top, bottom + 1)):
            return True  # a wall, pipe or step ahead (a low ceiling above Mario's head is not)
        if not (tile_at(tiles, x + 16, 11) or tile_at(tiles, x + 16, 12)):
            return True  # a pit ahead
        if any(-8 < ex - x < 56 and abs(ey - y) < 32 for ex, ey in s["enemies"]):
            return True
        stuck = frame_index - self.best_at
        return stuck > 40 and (stuck // 120) % 2 == 0  # stuck: jump for a while, then try walking

    def act(self, state: dict[str, Any], frame_index: int) -> int:
        if state.get("mode") == MODE_TITLE:
            return BTN_START if frame_index % 90 < 3 else 0  # START again would pause, so pulse it
        if state.get("mode") != MODE_PLAY or "tiles" not in state:
            return BTN_RIGHT | BTN_B
        if state["x"] > self.best_x + 2 or state["x"] < self.best_x - 256:
            self.best_x, self.best_at = state["x"], frame_index
        stuck = frame_index - self.best_at
        if stuck > 360 and stuck % 360 < 30:
            return BTN_LEFT  # long stuck: back up a little, then take a run-up
        press = False
        if 0 < self.hold < self.HOLD_FRAMES and (state["airborne"] or self.hold < 3):
            press, self.hold = True, self.hold + 1  # keep holding A for a high jump
        elif not state["airborne"] and not self.a_prev and self._wants_jump(state, frame_index):
            if self.delay == 0:
                self.delay = int(self.rng.integers(1, 4))
            self.delay -= 1
            if self.delay == 0:
                press, self.hold = True, 1
        else:
            self.hold = 0
        self.a_prev = press
        return BTN_RIGHT | BTN_B | (BTN_A if press else 0)


TOUCH_X, TOUCH_Y = 24, 32
"""How close (pixels, between top-left corners) an enemy is to Mario when it is what he touched."""


@cache
def knowledge() -> dict[str, Any]:
    """games/data/smb.knowledge.yaml: enemy names by object id, the levels' flagpole positions."""
    text = (resources.files("kibitz.games") / "data" / "smb.knowledge.yaml").read_text(encoding="utf-8")
    data: dict[str, Any] = yaml.safe_load(text)
    return data


def enemy_touching(state: dict[str, Any]) -> str | None:
    """The name of the enemy nearest Mario when one is close enough to have touched him (None when none is)."""
    names: dict[int, str] = knowledge()["enemies"]
    x, y = state.get("x", 0), state.get("y", 0)
    near = [
        (abs(ex - x) + abs(ey - y), names[kind])
        for (ex, ey), kind in zip(state.get("enemies", []), state.get("enemy_ids", []), strict=False)
        if kind in names and abs(ex - x) < TOUCH_X and abs(ey - y) < TOUCH_Y
    ]
    return min(near)[1] if near else None


class SuperMarioBros(GameAdapter):
    id = "smb"
    title = "Super Mario Bros."
    platform = "NES"
    genre = "platformer"
    fields: ClassVar[dict[str, str]] = {
        "world": "world number (1-8)",
        "stage": "stage in the world (1-4)",
        "lives": "lives left, counting the current one",
        "score": "score",
        "coins": "coins collected (100 gives a life)",
        "time": "time left on the clock",
        "x": "how far right Mario is in the level (pixels)",
        "dying": "Mario is dying (hit, or fell into a pit)",
    }
    # Mario's death and his walk to the castle play in the level's own view: on screen they are gameplay,
    # and pixel perception reports them as events (lives on the next card, the flag), not as scenes.
    visual_scenes: ClassVar[dict[str, str]] = {"dying": "gameplay", "level_end": "gameplay"}
    blank_scene = "transition"

    def check_installed(self) -> None:
        if importlib.util.find_spec("cynes") is None or rom_path() is None:
            raise KibitzError(f"Super Mario Bros. needs the cynes emulator and its ROM package: {INSTALL_HINT}")

    def make_env(self) -> SMBEnv:
        self.check_installed()
        rom = rom_path()
        assert rom is not None
        return SMBEnv(rom)

    def make_player(self, seed: int) -> SMBPlayer:
        return SMBPlayer(seed)

    @staticmethod
    def _dying(state: dict[str, Any]) -> bool:
        return state.get("mode") == MODE_PLAY and (
            state.get("player_state") in (PSTATE_DIES, PSTATE_DYING) or state.get("y_viewport", 1) > 1
        )

    def scene(self, state: dict[str, Any]) -> str:
        mode = state.get("mode")
        if mode == MODE_TITLE:
            return "title"
        if mode == MODE_GAME_OVER:
            return "game_over"
        if mode == MODE_WORLD_END:
            return "level_end"
        if self._dying(state):
            return "dying"
        if state.get("player_state") in (PSTATE_FLAGPOLE, PSTATE_AUTOWALK):
            return "level_end"  # flagpole, walk to the castle, time bonus (and pipe cut-scenes)
        if state.get("task") != 3:
            return "transition"
        return "gameplay"

    def hud(self, state: dict[str, Any]) -> dict[str, Any]:
        if not state:
            return {}
        raw = state["lives_raw"]
        return {
            "world": state["world"],
            "stage": state["stage"],
            "lives": 0 if raw == 255 else raw + 1,
            "score": state["score"],
            "coins": state["coins"],
            "time": state["time"],
            "x": state["x"],
            "dying": self._dying(state),
        }

    def truth(self, state: dict[str, Any]) -> dict[str, Any]:
        return {"fell": state.get("y_viewport", 1) > 1, "touching": enemy_touching(state)}

    def level_name(self, obs: Observation) -> str | None:
        world, stage = obs.value("world"), obs.value("stage")
        return None if world is None or stage is None else f"World {world}-{stage}"

    def progress(self, obs: Observation) -> float | None:
        world, stage, x = obs.value("world"), obs.value("stage"), obs.value("x")
        length = knowledge()["flag_x"].get(f"{world}-{stage}")
        return None if length is None or x is None else max(0.0, min(1.0, x / length))

    def death_cause(self, obs: Observation) -> tuple[str, str | None] | None:
        if obs.value("fell"):
            return "fell into a pit", None
        if obs.value("time") == 0:
            return "the clock ran out", None
        enemy = obs.value("touching")
        return (f"ran into a {enemy}", enemy) if enemy else None

    def detectors(self) -> list[DetectorSpec]:
        return [
            DetectorSpec("death", {"lives": "lives", "dying": "dying", "level": ["world", "stage"]}),
            DetectorSpec("game_over", {}),
            DetectorSpec("level_change", {"fields": ["world", "stage"]}),
            DetectorSpec("game_start", {}),
            DetectorSpec("streak", {"field": "coins", "count": 4, "window_s": 8.0, "type": "coin_streak"}),
            DetectorSpec("stall", {"progress": "x", "after_s": 12.0}),
            DetectorSpec("near_miss", {"field": "touching"}),
            # The clock ticks 2.5 a second; faster is the time bonus draining it at the flagpole.
            DetectorSpec("low_value", {"field": "time", "below": 100, "type": "low_time", "max_fall_per_s": 10}),
            DetectorSpec("milestone", {"field": "score", "every": 5000}),
        ]

    def describe(self, obs: Observation, precise: bool = False) -> str:
        v = obs.values()
        if not v or obs.scene == "title":
            return "Super Mario Bros. is on its title screen."
        # Reactions get only what rarely changes (level, lives; the clock once it runs low), so the prompt
        # prefix stays cached between events; answers to questions get every number. Read from pixels, any
        # field may not be known yet: what is unknown is left out, never guessed.
        text = "Super Mario Bros."
        if v.get("world") is not None and v.get("stage") is not None:
            text = f"Super Mario Bros., World {v['world']}-{v['stage']}"
        text += f"; {v['lives']} lives left." if v.get("lives") is not None else "."
        time_left = v.get("time")
        if precise:
            known = [
                f"{label} {v[key]}" if label else f"{v[key]} {unit}"
                for key, label, unit in (
                    ("score", "Score", ""),
                    ("coins", "", "coins"),
                    ("time", "", "seconds left on the clock"),
                )
                if v.get(key) is not None
            ]
            text += (" " + "; ".join(known) + ".") if known else ""
        elif time_left is not None and time_left < 150:
            # Mentioned well before the low-time event (under 100) so the prefix is cached when it fires.
            text += " Under 150 seconds left on the clock."
        return text


def true_deaths(states: list[tuple[float, dict[str, Any]]]) -> list[float]:
    """Times when the RAM lives counter dropped (or went to game over, 255) during play: the death truth."""
    times: list[float] = []
    prev: int | None = None
    for t, s in states:
        lives = s["lives_raw"]
        if prev is not None and s["mode"] != MODE_TITLE and lives != prev and (lives < prev or lives == 255):
            times.append(t)
        prev = lives
    return times


def true_level_changes(states: list[tuple[float, dict[str, Any]]]) -> list[float]:
    """Times when world or stage changed in RAM during play."""
    times: list[float] = []
    prev: tuple[int, int] | None = None
    for t, s in states:
        level = (s["world"], s["stage"])
        if prev is not None and level != prev and s["mode"] == MODE_PLAY:
            times.append(t)
        prev = level
    return times


def true_game_overs(states: list[tuple[float, dict[str, Any]]]) -> list[float]:
    """Times when the game switched to its game-over mode."""
    return [t for (_, a), (t, b) in itertools.pairwise(states) if a["mode"] != MODE_GAME_OVER == b["mode"]]
