"""NetHack through the NetHack Learning Environment (NLE) and MiniHack, with its true state from the game.

The picture is the 80×24 terminal a NetHack player sees (map, top-line messages and the two status lines),
drawn from NLE's tty buffer with a fixed-cell monospace font in the 16 terminal colours. The truth comes from
the game itself: the status values (blstats), the message line, and the glyph under every map square (which
monster is where). A scripted player explores, fights what is next to it and takes the stairs down; episodes
alternate between the real dungeon (NLE) and a small MiniHack arena full of monsters, so a few minutes of play
hold kills, wounds, deaths and new dungeon levels.
"""

from __future__ import annotations

import importlib.util
import random
import re
import warnings
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from kibitz.bench.recorders.base import QA, AdviceKey, Recorder, TrueFrame, hud_questions
from kibitz.core.errors import KibitzError
from kibitz.core.records import RGBImage

INSTALL_HINT = 'pip install nle==1.3.0 minihack==1.0.2 "setuptools<81"'

CELL_W, CELL_H = 10, 20
"""One character cell in pixels: the picture is 800×480."""
FONT_SIZE = 16

PALETTE = np.array(
    [
        (85, 85, 85),  # black: terminals show NetHack's black monsters and objects as dark grey
        (170, 0, 0),
        (0, 170, 0),
        (170, 85, 0),  # brown
        (0, 0, 170),
        (170, 0, 170),
        (0, 170, 170),
        (170, 170, 170),  # grey: the default text colour
        (85, 85, 85),  # "no colour" (dark grey)
        (255, 85, 85),  # orange is drawn as bright red on a 16-colour terminal
        (85, 255, 85),
        (255, 255, 85),
        (85, 85, 255),
        (255, 85, 255),
        (85, 255, 255),
        (255, 255, 255),
    ],
    dtype=np.uint8,
)
"""The 16 standard terminal colours (VGA values), indexed like NetHack's CLR_* numbers."""

OBS_KEYS = ("tty_chars", "tty_colors", "tty_cursor", "blstats", "message", "glyphs", "screen_descriptions")

# Keys, as NetHack reads them (all in nle.nethack.ACTIONS).
ENTER, ESC, FIGHT, DOWNSTAIRS, SEARCH, KICK, INVENTORY = 13, 27, ord("F"), ord(">"), ord("s"), 4, ord("i")
DIRECTIONS: dict[tuple[int, int], int] = {
    (0, -1): ord("k"),
    (0, 1): ord("j"),
    (-1, 0): ord("h"),
    (1, 0): ord("l"),
    (-1, -1): ord("y"),
    (1, -1): ord("u"),
    (-1, 1): ord("b"),
    (1, 1): ord("n"),
}

# NetHack 3.6 map symbols (rm.h, the S_* cmap indices).
S_STONE, S_NDOOR, S_VODOOR, S_HODOOR, S_VCDOOR, S_HCDOOR, S_DNSTAIR = 0, 12, 13, 14, 15, 16, 24
WALKABLE_CMAP = frozenset({S_NDOOR, S_VODOOR, S_HODOOR, S_VCDOOR, S_HCDOOR, *range(19, 32)})
"""Doorways, doors (a closed one opens when walked into), floor, corridors, stairs, altars, fountains..."""
DOORS = frozenset({S_VODOOR, S_HODOOR, S_VCDOOR, S_HCDOOR})
"""Door squares one cannot enter or leave diagonally (an empty doorway, S_NDOOR, allows it)."""

# blstats indices (NLE_BL_*).
BL_X, BL_Y, BL_HP, BL_HPMAX, BL_DEPTH, BL_GOLD, BL_AC, BL_XP, BL_TIME = 0, 1, 10, 11, 12, 13, 16, 18, 20

NEAR, THREAT = 5, 3
"""Monsters within NEAR squares are listed in the facts; within THREAT squares they are the advice key."""

ROLES = ("val-dwa-law-fem", "sam-hum-law-mal", "hea-gno-neu-fem", "tou-hum-neu-mal", "arc-dwa-law-mal")
"""Characters for the dungeon episodes (strong and weak ones: weak ones die, tourists carry gold)."""
ARENA_ROLES = ("hea-gno-neu-fem", "tou-hum-neu-mal", "wiz-elf-cha-mal", "arc-hum-neu-fem")
ARENA_MONSTERS = (
    "jackal",
    "giant rat",
    "hill orc",
    "gnome lord",
    "coyote",
    "hobbit",
    "giant ant",
    "homunculus",
    "dwarf",
    "rabid rat",
    "large kobold",
    "fox",
)
"""Monsters the arena draws from: early-game foes that a weak character can kill, or die to."""

SEARCHES = 12
"""Searches at one spot before the explorer looks for hidden passages elsewhere."""
MAX_HELD = 8
"""Frames at most between a death and the end screen that names the killer."""
DUNGEON_STEPS, ARENA_STEPS = 300, 160
"""Actions before an episode that has not ended by itself is abandoned for the next one."""

KILL = re.compile(r"\bYou (?:kill|destroy) (?:the |an? )?(?:poor )?([a-z][a-z' -]*?)[!.]")
ATTACK = re.compile(r"\b[Tt]he ([a-z][a-z' -]*?) (?!(?:just )?miss)([a-z]+s)\b[^!.]*!")
KILLED_BY = re.compile(r"(?i:killed by|died of) (?:an? |the )?([a-z][a-z' -]*)")
YN_PROMPT = re.compile(r"\[[a-zA-Z$\-*? ]+\](?: \(.\))?\s*$|\?\s*$")
MENU = re.compile(r"\((?:end|\d+ of \d+)\)")


def _font_path() -> Path | None:
    """DejaVu Sans Mono from matplotlib or the system, if either has it."""
    spec = importlib.util.find_spec("matplotlib")
    candidates = []
    if spec is not None and spec.origin is not None:
        candidates.append(Path(spec.origin).parent / "mpl-data" / "fonts" / "ttf" / "DejaVuSansMono.ttf")
    candidates.append(Path("/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"))
    return next((p for p in candidates if p.is_file()), None)


@lru_cache(maxsize=1)
def glyph_table() -> np.ndarray:
    """Every (colour, character) cell as RGB: an array of shape 16×128×CELL_H×CELL_W×3, drawn once."""
    from PIL import Image, ImageDraw, ImageFont

    path = _font_path()
    font: Any = ImageFont.truetype(str(path), FONT_SIZE) if path else ImageFont.load_default(FONT_SIZE)
    alpha = np.zeros((128, CELL_H, CELL_W), dtype=np.uint16)
    for code in range(33, 127):
        cell = Image.new("L", (CELL_W, CELL_H), 0)
        ImageDraw.Draw(cell).text((0, 1), chr(code), fill=255, font=font)
        alpha[code] = np.asarray(cell, dtype=np.uint16)
    table = alpha[None, :, :, :, None] * PALETTE.astype(np.uint16)[:, None, None, None, :] // 255
    return table.astype(np.uint8)


def render_tty(chars: np.ndarray, colors: np.ndarray) -> RGBImage:
    """The terminal as a player sees it: each character in its own cell, in its colour, on black."""
    table = glyph_table()
    cells = table[np.asarray(colors, dtype=np.int64) & 15, np.asarray(chars, dtype=np.int64) & 127]
    rows, cols = cells.shape[:2]
    image: RGBImage = np.ascontiguousarray(cells.transpose(0, 2, 1, 3, 4)).reshape(rows * CELL_H, cols * CELL_W, 3)
    return image


def _text(buffer: np.ndarray) -> str:
    """A NUL-terminated byte buffer (a message, a description) as text."""
    return bytes(np.asarray(buffer, dtype=np.uint8)).split(b"\0", 1)[0].decode("latin-1").strip()


def tty_lines(chars: np.ndarray) -> list[str]:
    """The terminal's rows as text."""
    return [bytes(row).decode("latin-1") for row in np.asarray(chars, dtype=np.uint8)]


@lru_cache(maxsize=1)
def monster_names() -> tuple[str, ...]:
    """NetHack's monster names, by monster index."""
    from nle import nethack

    return tuple(nethack.permonst(i).mname for i in range(nethack.NUMMONS))


@lru_cache(maxsize=1)
def _monster_name_set() -> frozenset[str]:
    return frozenset(monster_names())


def monster_name(text: str) -> str | None:
    """The monster a phrase of a message starts with ("gnome lord" from "gnome lord with a wand"), if any."""
    names = _monster_name_set()
    words = text.strip().lower().split()
    for end in range(len(words), 0, -1):
        name = " ".join(words[:end])
        if name in names:
            return name
    return None


@dataclass(slots=True)
class MapView:
    """What the glyphs show: where the hero can walk, what is unexplored, where monsters are."""

    walkable: np.ndarray
    unknown: np.ndarray
    doors: np.ndarray
    walls: np.ndarray
    downstairs: list[tuple[int, int]]
    monsters: dict[tuple[int, int], str]
    """Monsters that are neither tame nor peaceful, by (x, y) (the hero left out)."""
    peaceful: dict[tuple[int, int], str]
    pets: dict[tuple[int, int], str]


def read_map(
    glyphs: np.ndarray,
    hero: tuple[int, int],
    memory: np.ndarray | None = None,
    descriptions: np.ndarray | None = None,
) -> MapView:
    """The map from the glyphs. `memory` (last seen terrain per square, -1 unknown) fills squares that a
    monster, an object or the hero hides, and is updated in place; `descriptions` (NLE's far-look text per
    square) tells peaceful monsters from hostile ones."""
    from nle import nethack

    g = np.asarray(glyphs)
    is_cmap = (g >= nethack.GLYPH_CMAP_OFF) & (g < nethack.GLYPH_CMAP_OFF + 100)
    cmap = np.where(is_cmap, g - nethack.GLYPH_CMAP_OFF, -1)
    if memory is not None:
        memory[is_cmap] = cmap[is_cmap]
        cmap = np.where(is_cmap, cmap, memory)
    is_mon = nethack.glyph_is_monster(g)
    is_pet = nethack.glyph_is_pet(g)
    is_obj = nethack.glyph_is_object(g)
    walkable = np.isin(cmap, list(WALKABLE_CMAP)) | is_obj | is_mon
    unknown = cmap == S_STONE
    doors = np.isin(cmap, list(DOORS))
    names = monster_names()
    monsters: dict[tuple[int, int], str] = {}
    peaceful: dict[tuple[int, int], str] = {}
    pets: dict[tuple[int, int], str] = {}
    for y, x in zip(*np.nonzero(is_mon), strict=True):
        pos = (int(x), int(y))
        if pos == hero:
            continue
        name = names[int(nethack.glyph_to_mon(int(g[y, x])))]
        text = _text(descriptions[y, x]) if descriptions is not None else ""
        if is_pet[y, x] or text.startswith("tame "):
            pets[pos] = name
        elif text.startswith("peaceful "):
            peaceful[pos] = name
        else:
            monsters[pos] = name
    stairs = [(int(x), int(y)) for y, x in zip(*np.nonzero(cmap == S_DNSTAIR), strict=True)]
    walls = (cmap >= 1) & (cmap <= 11)
    return MapView(walkable, unknown, doors, walls, stairs, monsters, peaceful, pets)


def _chebyshev(a: tuple[int, int], b: tuple[int, int]) -> int:
    return max(abs(a[0] - b[0]), abs(a[1] - b[1]))


@dataclass
class Explorer:
    """A scripted NetHack player: explores, fights what is next to it and goes down the stairs it finds.

    It answers --More-- with Enter and declines other prompts and menus with Escape. The seed's random stream
    decides between equally good moves, how eager it is to fight and how often it wanders off.
    """

    rng: random.Random
    visited: set[tuple[int, int, int]] = field(default_factory=set)
    stairs: dict[int, tuple[int, int]] = field(default_factory=dict)
    blocked: set[tuple[int, int, int]] = field(default_factory=set)
    memory: dict[int, np.ndarray] = field(default_factory=dict)
    pending: list[int] = field(default_factory=list)
    last_pos: tuple[int, int, int] | None = None
    still: int = 0
    searched: dict[tuple[int, int, int], int] = field(default_factory=dict)

    def act(self, obs: dict[str, Any]) -> int:
        lines = tty_lines(obs["tty_chars"])
        screen = "\n".join(lines)
        if "--More--" in screen:
            return ENTER
        if MENU.search(screen):
            self.pending.clear()
            return ESC
        top = lines[0].rstrip()
        if self.pending:
            return self.pending.pop(0)
        if YN_PROMPT.search(top) or int(obs["tty_cursor"][0]) == 0:
            return ESC  # a question or a name to type on the top line: decline
        bl = obs["blstats"]
        x, y, depth = int(bl[BL_X]), int(bl[BL_Y]), int(bl[BL_DEPTH])
        here = (x, y, depth)
        self.still = self.still + 1 if here == self.last_pos else 0
        self.last_pos = here
        self.visited.add(here)
        glyphs = obs["glyphs"]
        memory = self.memory.setdefault(depth, np.full(glyphs.shape, -1, dtype=np.int64))
        view = read_map(glyphs, (x, y), memory, obs.get("screen_descriptions"))
        for sx, sy in view.downstairs:
            self.stairs[depth] = (sx, sy)
        message = bytes(obs["message"]).split(b"\0", 1)[0].decode("latin-1")
        adjacent = [p for p in view.monsters if _chebyshev(p, (x, y)) == 1]
        if adjacent:
            target = self.rng.choice(sorted(adjacent))
            key = DIRECTIONS[(target[0] - x, target[1] - y)]
            if self.rng.random() < 0.5:
                self.pending.append(key)
                return FIGHT
            return key
        if self.stairs.get(depth) == (x, y) and self.rng.random() < 0.9:
            return DOWNSTAIRS
        if "locked" in message and self.rng.random() < 0.7:
            door = self._door_near(view, x, y)
            if door is not None:
                self.pending.append(DIRECTIONS[door])
                return KICK
        if self.still > 6:
            self.blocked.add(here)
            self.still = 0
            return self._random_step(view, x, y)
        if self.rng.random() < 0.08:
            return self._random_step(view, x, y)
        near = [p for p in view.monsters if _chebyshev(p, (x, y)) <= 4]
        if not near and self.rng.random() < 0.015:
            return INVENTORY  # a look at the pack now and then, as players do (closed with Escape)
        goals: set[tuple[int, int]] = set()
        if near and self.rng.random() < 0.7:
            goals = set(near)
        elif depth in self.stairs:
            goals = {self.stairs[depth]}
        if not goals:
            goals = self._frontier(view, depth)
        step = self._path_step(view, (x, y), goals, depth) if goals else None
        if step is None:
            return self._search(view, (x, y), depth)
        return DIRECTIONS[step]

    def _door_near(self, view: MapView, x: int, y: int) -> tuple[int, int] | None:
        for dx, dy in ((0, -1), (0, 1), (-1, 0), (1, 0)):
            if 0 <= y + dy < view.doors.shape[0] and 0 <= x + dx < view.doors.shape[1] and view.doors[y + dy, x + dx]:
                return (dx, dy)
        return None

    def _random_step(self, view: MapView, x: int, y: int) -> int:
        options = [d for d in DIRECTIONS if self._can_move(view, (x, y), d)]
        return DIRECTIONS[self.rng.choice(options or list(DIRECTIONS))]

    def _search(self, view: MapView, pos: tuple[int, int], depth: int) -> int:
        """Nothing left to explore: look for hidden doors and corridors where they are likely (dead ends,
        squares along walls and rock), a dozen searches at each spot."""
        here = (*pos, depth)
        if self.searched.get(here, 0) < SEARCHES and self._search_score(view, pos) > 0:
            self.searched[here] = self.searched.get(here, 0) + 1
            return SEARCH
        spots = {
            (int(x), int(y))
            for y, x in zip(*np.nonzero(view.walkable), strict=True)
            if self.searched.get((int(x), int(y), depth), 0) < SEARCHES and self._search_score(view, (x, y)) >= 3
        }
        step = self._path_step(view, pos, spots, depth) if spots else None
        return DIRECTIONS[step] if step is not None else self._random_step(view, *pos)

    @staticmethod
    def _search_score(view: MapView, pos: tuple[int, int]) -> int:
        x, y = pos
        box = (slice(max(y - 1, 0), y + 2), slice(max(x - 1, 0), x + 2))
        dead_end = int(view.walkable[box].sum()) <= 2  # itself and the way back
        return int(view.unknown[box].sum()) + int(view.walls[box].sum()) // 2 + (4 if dead_end else 0)

    def _frontier(self, view: MapView, depth: int) -> set[tuple[int, int]]:
        """Walkable squares not yet stood on that touch unexplored ones."""
        unknown = view.unknown
        touches = np.zeros_like(unknown)
        touches[1:, :] |= unknown[:-1, :]
        touches[:-1, :] |= unknown[1:, :]
        touches[:, 1:] |= unknown[:, :-1]
        touches[:, :-1] |= unknown[:, 1:]
        ys, xs = np.nonzero(view.walkable & touches)
        return {
            (int(x), int(y))
            for x, y in zip(xs, ys, strict=True)
            if (int(x), int(y), depth) not in self.visited and (int(x), int(y), depth) not in self.blocked
        }

    def _can_move(self, view: MapView, pos: tuple[int, int], d: tuple[int, int]) -> bool:
        nx, ny = pos[0] + d[0], pos[1] + d[1]
        h, w = view.walkable.shape
        if not (0 <= nx < w and 0 <= ny < h) or not view.walkable[ny, nx]:
            return False
        diagonal = d[0] != 0 and d[1] != 0
        return not (diagonal and (view.doors[ny, nx] or view.doors[pos[1], pos[0]]))

    def _path_step(
        self, view: MapView, start: tuple[int, int], goals: set[tuple[int, int]], depth: int
    ) -> tuple[int, int] | None:
        """The first step of a shortest walk to the nearest goal (ties broken by the seed)."""
        dirs = list(DIRECTIONS)
        self.rng.shuffle(dirs)
        first: dict[tuple[int, int], tuple[int, int] | None] = {start: None}
        queue = deque([start])
        while queue:
            pos = queue.popleft()
            if pos in goals and pos != start:
                return first[pos]
            for d in dirs:
                nxt = (pos[0] + d[0], pos[1] + d[1])
                if nxt in first or ((nxt[0], nxt[1], depth) in self.blocked and nxt not in goals):
                    continue
                if not self._can_move(view, pos, d) and nxt not in goals:
                    continue
                if (nxt in view.monsters or nxt in view.peaceful) and nxt not in goals:
                    continue
                first[nxt] = first[pos] if first[pos] is not None else d
                queue.append(nxt)
        return None


def parse_status(lines: list[str]) -> dict[str, int]:
    """The values the two status lines show (fields the screen does not show are left out)."""
    bottom = lines[-1]
    hud: dict[str, int] = {}
    patterns = {
        "dlvl": r"\bDlvl:(\d+)",
        "gold": r"\$:(\d+)",
        "hp": r"\bHP:(-?\d+)\(",
        "max_hp": r"\bHP:-?\d+\((\d+)\)",
        "ac": r"\bAC:(-?\d+)",
        "level": r"\b(?:Xp|Exp):(\d+)",
    }
    if not bottom.startswith("Dlvl:"):
        return hud
    for name, pattern in patterns.items():
        match = re.search(pattern, bottom)
        if match:
            hud[name] = int(match.group(1))
    return hud


def arena_des(monsters: list[str]) -> str:
    """A lit MiniHack room with the stairs down somewhere and these hostile, awake monsters in it."""
    from minihack import LevelGenerator

    gen = LevelGenerator(w=17, h=9, lit=True)
    gen.add_goal_pos()
    for name in monsters:
        gen.add_monster(name=name, args=("hostile", "awake"))
        gen.footer += "\n"
    return gen.get_des()


@dataclass
class Episode:
    """One game of NetHack (a dungeon run or an arena fight) from its reset to its end, and what the
    recorder has seen of it so far."""

    kind: str
    role: str
    env: Any
    actions: dict[int, int]
    limit: int
    steps: int = 0
    ended: bool = False
    died: bool = False
    dead: bool = False
    """The hero has died: this frame and the later ones of the episode show the death and the end screen."""
    prev_hp: int | None = None
    prev_depth: int | None = None
    prev_message: tuple[str, int] | None = None
    attacker: str | None = None
    """The last monster that hit the hero."""
    killer: str | None = None


def _near(obs: dict[str, Any], hero: tuple[int, int]) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """(distance, name) of the hostile and of the peaceful monsters within NEAR squares of the hero, nearest
    first (pets left out)."""
    view = read_map(obs["glyphs"], hero, descriptions=obs.get("screen_descriptions"))
    hostile = sorted((_chebyshev(p, hero), n) for p, n in view.monsters.items() if _chebyshev(p, hero) <= NEAR)
    peaceful = sorted((_chebyshev(p, hero), n) for p, n in view.peaceful.items() if _chebyshev(p, hero) <= NEAR)
    return hostile, peaceful


class NetHackRecorder(Recorder):
    """NetHack in a terminal, played by a scripted explorer; episodes alternate dungeon and arena."""

    game = "nethack"
    title = "NetHack (MiniHack)"
    genre = "roguelike"
    fps = 2.0
    clip_fps = 2.0
    install_hint = INSTALL_HINT
    hud_labels: ClassVar[dict[str, tuple[str, ...]]] = {
        "dlvl": ("Dlvl",),
        "gold": ("$",),
        "hp": ("HP",),
        "max_hp": ("HP@max",),  # the second number of HP:12(15)
        "ac": ("AC",),
        "level": ("Xp", "Exp"),
    }
    kinds: ClassVar[tuple[str, ...]] = ("dungeon", "arena")
    """Episode kinds in turn: the real dungeon (NLE's NetHackScore) and a MiniHack arena."""

    def __init__(self) -> None:
        self._envs: dict[tuple[str, str], Any] = {}

    def check_installed(self) -> None:
        for module in ("nle", "minihack", "pkg_resources"):
            if importlib.util.find_spec(module) is None:
                raise KibitzError(f"NetHack needs the {module} package, which is missing: {INSTALL_HINT}")

    # -- environments ------------------------------------------------------------------------------------

    def _env(self, kind: str, role: str) -> Any:
        env = self._envs.get((kind, role))
        if env is not None:
            return env
        from nle import nethack

        common: dict[str, Any] = {
            "actions": nethack.ACTIONS,
            "character": role,
            "allow_all_modes": True,  # the player sees and answers --More-- itself
            "max_episode_steps": 10**7,  # the recorder ends episodes itself
            "fix_moon_phase": True,  # the moon and Friday the 13th from the seed, not from today's date
        }
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if kind == "dungeon":
                from nle.env.tasks import NetHackScore

                env = NetHackScore(observation_keys=OBS_KEYS, **common)
            else:
                from minihack import MiniHackNavigation

                env = MiniHackNavigation(
                    des_file=arena_des(list(ARENA_MONSTERS[:3])),
                    observation_keys=list(OBS_KEYS),
                    **common,
                )
        self._envs[(kind, role)] = env
        return env

    def _start(self, seed: int, number: int) -> tuple[Episode, dict[str, Any]]:
        """Reset the environment for episode `number` of the run with this seed."""
        rng = random.Random(f"nethack:{seed}:{number}")
        kind = self.kinds[number % len(self.kinds)]
        role = rng.choice(ROLES if kind == "dungeon" else ARENA_ROLES)
        env = self._env(kind, role)
        if kind == "arena":
            env.update(arena_des(rng.sample(ARENA_MONSTERS, rng.randint(3, 5))))
        # NetHack's core and display random streams, never reseeded from the clock: the run is replayable.
        env.seed(rng.getrandbits(62), rng.getrandbits(62), reseed=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            obs, _ = env.reset()
        actions = {int(a): i for i, a in enumerate(env.actions)}
        return Episode(kind, role, env, actions, DUNGEON_STEPS if kind == "dungeon" else ARENA_STEPS), obs

    def close(self) -> None:
        for env in self._envs.values():
            env.close()
        self._envs.clear()

    # -- frames ------------------------------------------------------------------------------------------

    def frames(self, seed: int, seconds: float) -> Iterator[TrueFrame]:
        self.check_installed()
        number = 0
        episode, obs = self._start(seed, number)
        player = Explorer(random.Random(f"nethack-player:{seed}:{number}"))
        index = 0
        try:
            held: list[TrueFrame] = []
            while index / self.fps <= seconds:
                frame = self._frame(index / self.fps, obs, episode)
                index += 1
                over = episode.ended or episode.steps >= episode.limit
                if episode.dead:
                    # From the death on, hold the frames until the end screen names the killer, then tell them all.
                    held.append(frame)
                    if over or len(held) >= MAX_HELD:
                        yield from self._with_killer(held, episode)
                        held = []
                else:
                    yield frame
                if not over:
                    key = player.act(obs)
                    obs, _, terminated, truncated, info = episode.env.step(episode.actions[key])
                    episode.steps += 1
                    episode.ended = bool(terminated or truncated)
                    episode.died = episode.ended and int(info.get("end_status", 0)) == 1  # StepStatus.DEATH
                # MiniHack ends an arena won on the stairs by quitting the game: cut to the next episode rather
                # than show NetHack's "quit" screen (a death's end screen is shown: it names the killer).
                if over or (episode.ended and not episode.died):
                    number += 1
                    episode, obs = self._start(seed, number)
                    player = Explorer(random.Random(f"nethack-player:{seed}:{number}"))
            yield from self._with_killer(held, episode)
        finally:
            self.close()

    @staticmethod
    def _with_killer(frames: list[TrueFrame], episode: Episode) -> list[TrueFrame]:
        """The frames after a death, with what killed the hero: what the game's end screen names ("killed by a
        gas spore's explosion": the gas spore), or else the last monster that hit the hero."""
        if episode.killer:
            name = monster_name(episode.killer.replace("'s ", " "))
            killers = list(dict.fromkeys([name or episode.killer, episode.killer]))
        else:
            killers = [episode.attacker] if episode.attacker else []
        for frame in frames:
            if killers:
                frame.facts["killer"], frame.facts["killers"] = killers[0], killers
        return frames

    def _frame(self, t: float, obs: dict[str, Any], episode: Episode) -> TrueFrame:
        lines = tty_lines(obs["tty_chars"])
        screen = "\n".join(lines)
        image = render_tty(obs["tty_chars"], obs["tty_colors"])  # a new array: frames never share pixels
        bl = [int(v) for v in obs["blstats"]]
        in_game = bl[BL_HPMAX] > 0  # NLE zeroes the status once the game is over
        hp, depth, turn = bl[BL_HP], bl[BL_DEPTH], bl[BL_TIME]
        message = _text(obs["message"])
        hero = (bl[BL_X], bl[BL_Y])
        hostile, peaceful = _near(obs, hero) if in_game else ([], [])
        events: list[str] = []

        for match in ATTACK.finditer(message):
            name = monster_name(match.group(1))
            if name is not None:
                episode.attacker = name
        # The end screen wraps its lines at the terminal's edge: join them before reading "killed by ...".
        joined = "".join(line if len(line.rstrip()) == len(line) else line.rstrip() + "\n" for line in lines)
        killed_by = KILLED_BY.search(joined)
        if killed_by:
            episode.killer = killed_by.group(1).strip().rstrip(".")
        dying = (in_game and hp <= 0) or episode.died or "You die..." in screen
        if dying and not episode.dead:
            episode.dead = True
            events += ["death", "game_over"]
        elif in_game and episode.prev_hp is not None and hp < episode.prev_hp:
            events.append("damage")
            if not ATTACK.search(message) and hostile and hostile[0][0] == 1:
                episode.attacker = hostile[0][1]
        if in_game and episode.prev_depth and depth != episode.prev_depth:
            events.append("level_change")
        if KILL.search(message) and (message, turn) != episode.prev_message:
            events.append("kill")
        if in_game:
            episode.prev_hp, episode.prev_depth = hp, depth
        episode.prev_message = (message, turn)

        scene = "death" if episode.dead else "menu" if MENU.search(screen) else "gameplay"
        facts: dict[str, Any] = {
            "message": message,
            "monsters": [name for _, name in hostile + peaceful],
            "threats": sorted({name for d, name in hostile if d <= THREAT}),
            "peaceful": [name for _, name in peaceful],
            "episode": episode.kind,
            "role": episode.role,
        }
        if in_game:
            facts["status"] = {
                "hp": hp,
                "max_hp": bl[BL_HPMAX],
                "dlvl": depth,
                "gold": bl[BL_GOLD],
                "ac": bl[BL_AC],
                "level": bl[BL_XP],
                "turn": turn,
            }
        return TrueFrame(t, image, scene, parse_status(lines), events, facts)

    # -- questions and advice ----------------------------------------------------------------------------

    def questions(self, frame: TrueFrame, rng: random.Random) -> list[QA]:
        asks = {
            "hp": "How many hit points do I have?",
            "dlvl": "What dungeon level am I on?",
            "gold": "How much gold do I have?",
        }
        qas = hud_questions(frame.hud, asks)
        rng.shuffle(qas)
        killers = frame.facts.get("killers")
        if frame.scene == "death" and killers:
            qas.insert(0, QA("What killed me?", tuple(killers), "name"))
        return qas[:3]

    def advice(self, frame: TrueFrame) -> AdviceKey | None:
        threats = frame.facts.get("threats")
        if frame.scene != "gameplay" or not threats:
            return None
        return AdviceKey("threat", tuple(t.lower() for t in threats), "What should I watch out for?")
