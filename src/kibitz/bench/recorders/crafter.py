"""Crafter (Hafner's open-world survival benchmark), with its true state from the environment.

The picture is Crafter's own 256×256 render: a 9×7-tile view around the player above two rows of inventory
icons, each with its count (health, food, drink and energy first; an item is drawn only while the player has
at least one). The truth is the environment's info: the inventory, the achievement counters and the semantic
map (which material or creature is on every tile). A scripted forager drinks, eats cows, chops trees, places
a table, crafts tools, mines stone and sleeps when tired; when the character dies or the episode runs out the
environment is reset (its next episode has a seed derived from the run's) and the run goes on.
"""

from __future__ import annotations

import importlib.util
import random
from collections import defaultdict, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kibitz.bench.recorders.base import QA, AdviceKey, Recorder, TrueFrame, hud_questions
from kibitz.core.errors import KibitzError

INSTALL_HINT = "pip install crafter==1.8.3"

SIZE = 256
"""Picture size: 28-pixel tiles (9 across) with a 2-pixel border."""
VIEW_X, VIEW_Y = 4, 3
"""The render shows the tiles up to 4 to the left and right of the player and 3 above and below."""
THREAT = 3
"""A zombie or skeleton this close (in tiles, either axis) is a threat worth naming."""
SEARCH = 12
"""How far (in tiles, either axis) the forager looks for trees, water and cows."""

OBJECTS = ("player", "cow", "zombie", "skeleton", "arrow", "plant")
"""Crafter's creature classes in the order its semantic map numbers them (after the materials)."""
WALKABLE = ("grass", "sand", "path")
TERRAIN = frozenset({"grass", "sand", "path", "player"})
"""Names left out of "nearby" (the ground, the player)."""
DIRS: dict[str, tuple[int, int]] = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}

ACHIEVEMENT_WORDS: dict[str, tuple[str, ...]] = {
    "collect_coal": ("coal",),
    "collect_diamond": ("diamond",),
    "collect_drink": ("drink", "water"),
    "collect_iron": ("iron",),
    "collect_sapling": ("sapling",),
    "collect_stone": ("stone",),
    "collect_wood": ("wood",),
    "defeat_skeleton": ("skeleton",),
    "defeat_zombie": ("zombie",),
    "eat_cow": ("cow",),
    "eat_plant": ("plant",),
    "make_iron_pickaxe": ("iron pickaxe",),
    "make_iron_sword": ("iron sword",),
    "make_stone_pickaxe": ("stone pickaxe",),
    "make_stone_sword": ("stone sword",),
    "make_wood_pickaxe": ("wood pickaxe", "wooden pickaxe"),
    "make_wood_sword": ("wood sword", "wooden sword"),
    "place_furnace": ("furnace",),
    "place_plant": ("plant", "sapling"),
    "place_stone": ("stone",),
    "place_table": ("table",),
    "wake_up": ("wake", "woke", "sleep", "slept"),
}
"""Words that name each achievement in a reply (besides the name itself, with spaces)."""


def achievement_answers(name: str) -> tuple[str, ...]:
    """Accepted answers for "what did I just unlock?": the name as words and the thing it is about."""
    return tuple(dict.fromkeys((name.replace("_", " "), name, *ACHIEVEMENT_WORDS.get(name, ()))))


def semantic_names() -> list[str | None]:
    """Names of the semantic map's ids: Crafter's materials (id 0 is outside the world), then creatures."""
    from crafter import constants

    return [None, *constants.materials, *OBJECTS]


@dataclass
class Situation:
    """What the forager and the truth need from one step of the environment."""

    pos: tuple[int, int]
    inventory: dict[str, int]
    semantic: np.ndarray
    names: list[str | None]
    facing: tuple[int, int]
    sleeping: bool
    achievements: dict[str, int]

    def name_at(self, x: int, y: int) -> str | None:
        w, h = self.semantic.shape
        return self.names[int(self.semantic[x, y])] if 0 <= x < w and 0 <= y < h else None

    def around(self, rx: int, ry: int) -> list[tuple[int, str]]:
        """(distance, name) of every tile within rx/ry of the player (distance: the larger axis offset)."""
        px, py = self.pos
        w, h = self.semantic.shape
        found = []
        for x in range(max(0, px - rx), min(w, px + rx + 1)):
            for y in range(max(0, py - ry), min(h, py + ry + 1)):
                name = self.names[int(self.semantic[x, y])]
                if name is not None and (x, y) != (px, py):
                    found.append((max(abs(x - px), abs(y - py)), name))
        return sorted(found)

    def near(self, name: str, radius: int) -> bool:
        return any(n == name for d, n in self.around(radius, radius) if d <= radius)


def _path_step(s: Situation, targets: frozenset[str]) -> str | None:
    """The next action toward the nearest reachable tile holding one of `targets`: a move, or "do" when the
    player stands next to it and faces it (a move toward a blocked tile only turns the player)."""
    px, py = s.pos
    for key, (dx, dy) in DIRS.items():
        if s.name_at(px + dx, py + dy) in targets:
            return "do" if s.facing == (dx, dy) else f"move_{key}"
    start = (px, py)
    parent: dict[tuple[int, int], tuple[int, int]] = {start: start}
    queue = deque([start])
    while queue:
        x, y = queue.popleft()
        for dx, dy in DIRS.values():
            nxt = (x + dx, y + dy)
            if nxt in parent or abs(nxt[0] - px) > SEARCH or abs(nxt[1] - py) > SEARCH:
                continue
            name = s.name_at(*nxt)
            if name in targets:
                step = (x, y)
                while parent[step] != start:
                    step = parent[step]
                if step == start:  # unreachable here: targets next to the player were handled above
                    return None
                return "move_" + next(k for k, d in DIRS.items() if d == (step[0] - px, step[1] - py))
            if name in WALKABLE:
                parent[nxt] = (x, y)
                queue.append(nxt)
    return None


class Forager:
    """A biased explorer: it follows its needs (water, food, sleep), gathers wood, builds a table, crafts
    tools, mines stone and fights zombies next to it, with a little randomness."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.heading = rng.choice(list(DIRS))

    def act(self, s: Situation) -> str:
        inv = s.inventory
        if s.sleeping:
            return "noop"
        if self.rng.random() < 0.08:
            return self.rng.choice(["noop", "do", *(f"move_{k}" for k in DIRS)])
        px, py = s.pos
        for key, (dx, dy) in DIRS.items():
            if s.name_at(px + dx, py + dy) == "zombie":
                return "do" if s.facing == (dx, dy) else f"move_{key}"
        if inv["energy"] <= 2 and not s.near("zombie", 5):
            return "sleep"
        if s.near("table", 1):
            for tool, needs in (
                ("wood_pickaxe", {"wood": 1}),
                ("wood_sword", {"wood": 1}),
                ("stone_pickaxe", {"wood": 1, "stone": 1}),
                ("stone_sword", {"wood": 1, "stone": 1}),
            ):
                if inv[tool] == 0 and all(inv[k] >= v for k, v in needs.items()):
                    return f"make_{tool}"
        ahead = s.name_at(px + s.facing[0], py + s.facing[1])
        if inv["wood"] >= 3 and not s.near("table", 8):
            if ahead in WALKABLE:
                return "place_table"
            return f"move_{self.rng.choice(list(DIRS))}"
        if inv["sapling"] >= 1 and ahead == "grass" and self.rng.random() < 0.5:
            return "place_plant"
        if inv["stone"] >= 2 and ahead in ("grass", "sand", "path", "water") and self.rng.random() < 0.2:
            return "place_stone"
        wants: list[frozenset[str]] = []
        if inv["drink"] <= 6:
            wants.append(frozenset({"water"}))
        if inv["food"] <= 6:
            wants.append(frozenset({"cow"}))
        if inv["wood"] >= 1 and inv["wood_pickaxe"] == 0 and s.near("table", 8):
            wants.append(frozenset({"table"}))
        if inv["wood"] < 6:
            wants.append(frozenset({"tree"}))
        if inv["wood_pickaxe"] and inv["stone"] < 5:
            wants.append(frozenset({"stone", "coal"}))
        for targets in wants:
            if "table" in targets and s.near("table", 1):
                continue
            step = _path_step(s, targets)
            if step is not None:
                return step
        if ahead == "grass" and inv["sapling"] == 0 and self.rng.random() < 0.3:
            return "do"  # a sapling now and then
        if self.rng.random() < 0.05:
            self.heading = self.rng.choice(list(DIRS))
        dx, dy = DIRS[self.heading]
        if s.name_at(px + dx, py + dy) not in WALKABLE:
            self.heading = self.rng.choice(list(DIRS))
        return f"move_{self.heading}"


class _OrderedSet(dict[Any, None]):
    """The part of the set API Crafter's World uses for its chunks, iterated in insertion order."""

    def add(self, item: Any) -> None:
        self[item] = None

    def remove(self, item: Any) -> None:
        del self[item]


def _ordered_chunks(env: Any) -> None:
    """Make a Crafter run replayable: its World keeps each chunk's creatures in a plain set, ordered by memory
    address, and picks the creature to despawn by position in it, so two runs from one seed drift apart. With
    insertion-ordered chunks the whole run follows from the seed."""
    world = env._world
    reset = world.reset

    def ordered_reset(seed: int | None = None) -> None:
        reset(seed=seed)
        world._chunks = defaultdict(_OrderedSet)

    world.reset = ordered_reset


@dataclass
class Episode:
    """One Crafter episode as the recorder has seen it so far."""

    unlocked: list[str] = field(default_factory=list)
    health: int | None = None


class CrafterRecorder(Recorder):
    """Crafter played by a scripted forager; the world is reset when the character dies."""

    game = "crafter"
    title = "Crafter"
    genre = "survival-crafting"
    fps = 10.0
    """One environment step is a tenth of a second of game time."""
    clip_fps = 10.0
    install_hint = INSTALL_HINT

    def check_installed(self) -> None:
        if importlib.util.find_spec("crafter") is None:
            raise KibitzError(f"Crafter needs the crafter package, which is missing: {INSTALL_HINT}")

    def frames(self, seed: int, seconds: float) -> Iterator[TrueFrame]:
        self.check_installed()
        import crafter

        names = semantic_names()
        actions = {name: i for i, name in enumerate(crafter.constants.actions)}
        # Each reset starts a new world from hash((seed, episode number)): the whole run follows from the seed.
        env = crafter.Env(seed=seed % (2**31 - 1), size=(SIZE, SIZE))
        _ordered_chunks(env)
        player = Forager(random.Random(f"crafter-player:{seed}"))
        image = env.reset()
        obs_info: dict[str, Any] = {}
        episode = Episode()
        done = False
        index = 0
        while True:
            s = self._situation(env, obs_info, names)
            yield self._frame(index / self.fps, image, s, episode, done)
            index += 1
            if index / self.fps > seconds:
                return
            if done:
                image, obs_info, episode, done = env.reset(), {}, Episode(), False
                continue
            image, _, done, obs_info = env.step(actions[player.act(s)])

    @staticmethod
    def _situation(env: Any, info: dict[str, Any], names: list[str | None]) -> Situation:
        me = env._player  # the facing and sleeping flags are not in info
        if not info:  # right after a reset: the same truth, read from the world
            info = {
                "inventory": dict(me.inventory),
                "semantic": env._sem_view(),
                "player_pos": me.pos,
                "achievements": dict(me.achievements),
            }
        x, y = (int(v) for v in info["player_pos"])
        fx, fy = (int(v) for v in me.facing)
        inventory = {k: int(v) for k, v in info["inventory"].items()}
        achievements = {k: int(v) for k, v in info["achievements"].items()}
        return Situation((x, y), inventory, info["semantic"], names, (fx, fy), bool(me.sleeping), achievements)

    def _frame(self, t: float, image: np.ndarray, s: Situation, episode: Episode, done: bool) -> TrueFrame:
        inv = s.inventory
        dead = inv["health"] <= 0
        events: list[str] = []
        if dead and done:
            events += ["death", "game_over"]
        elif episode.health is not None and inv["health"] < episode.health:
            events.append("damage")
        episode.health = inv["health"]
        # Achievements the environment has counted for the first time in this episode.
        new = [a for a, count in s.achievements.items() if count > 0 and a not in episode.unlocked]
        if new:
            events.append("achievement")
            episode.unlocked.extend(new)
        around = s.around(VIEW_X, VIEW_Y)
        nearby = list(dict.fromkeys(n for _, n in around if n not in TERRAIN))
        facts: dict[str, Any] = {
            "inventory": dict(inv),
            "achievements": list(episode.unlocked),
            "nearby": nearby,
            "threats": sorted({n for d, n in around if n in ("zombie", "skeleton") and d <= THREAT}),
            "near_table": s.near("table", 1),
        }
        if new:
            facts["new_achievement"] = new[0]
            facts["new_achievements"] = new
        scene = "death" if dead and done else "sleeping" if s.sleeping else "gameplay"
        hud = {k: v for k, v in inv.items() if v >= 1}  # the render draws only what the player has
        return TrueFrame(t, np.array(image, dtype=np.uint8, copy=True), scene, hud, events, facts)

    # -- questions and advice ----------------------------------------------------------------------------

    def questions(self, frame: TrueFrame, rng: random.Random) -> list[QA]:
        qas: list[QA] = []
        new = frame.facts.get("new_achievement")
        if new:
            qas.append(QA("What did I just unlock?", achievement_answers(new), "name"))
        asks = {
            "health": "What's my health?",
            "wood": "How much wood do I have?",
            "food": "How much food do I have?",
            "drink": "How much water do I have?",
            "stone": "How much stone do I have?",
            "sapling": "How many saplings do I have?",
        }
        counts = hud_questions(frame.hud, asks)
        rng.shuffle(counts)
        return (qas + counts)[:3]

    def advice(self, frame: TrueFrame) -> AdviceKey | None:
        if frame.scene != "gameplay":
            return None
        good = advice_words(
            frame.facts.get("inventory", {}),
            set(frame.facts.get("achievements", [])),
            set(frame.facts.get("nearby", [])),
            bool(frame.facts.get("near_table")),
        )
        good = [*frame.facts.get("threats", []), *good]
        if not good:
            return None
        return AdviceKey("achievement", tuple(dict.fromkeys(good)), "What should I do next?")


def advice_words(inv: dict[str, int], unlocked: set[str], nearby: set[str], near_table: bool) -> list[str]:
    """Words naming useful next steps: achievements not yet unlocked whose requirements (Crafter's
    data.yaml) are met or one step away given the inventory and what is on screen, then urgent needs."""
    from crafter import constants

    def has(needs: dict[str, int], slack: int = 0) -> bool:
        return all(inv.get(k, 0) + slack >= v for k, v in needs.items())

    words: list[str] = []

    def want(achievement: str, ok: bool, *say: str) -> None:
        if ok and achievement not in unlocked:
            words.extend(say)

    collect, place, make = constants.collect, constants.place, constants.make
    want("collect_wood", "tree" in nearby, "wood", "tree")
    want("collect_drink", "water" in nearby, "water", "drink")
    want("eat_cow", "cow" in nearby, "cow", "eat")
    want("collect_sapling", True, "sapling")
    want("place_plant", inv.get("sapling", 0) >= 1, "plant", "sapling")
    want("place_table", has(place["table"]["uses"], slack=1 if "tree" in nearby else 0), "table")
    table = near_table or "table" in nearby
    for tool in ("wood_pickaxe", "wood_sword", "stone_pickaxe", "stone_sword"):
        word = tool.split("_")[1]
        want(f"make_{tool}", table and has(make[tool]["uses"]), word, tool.replace("_", " "))
    for material in ("stone", "coal", "iron", "diamond"):
        want(f"collect_{material}", material in nearby and has(collect[material]["require"]), material)
    want("place_stone", has(place["stone"]["uses"]), "stone")
    want("place_furnace", table and has(place["furnace"]["uses"], slack=1), "furnace")
    want("wake_up", inv.get("energy", 9) <= 3, "sleep")
    if inv.get("drink", 9) <= 3:
        words += ["water", "drink"]
    if inv.get("food", 9) <= 3:
        words += ["food", "eat", "cow"]
    if inv.get("energy", 9) <= 2:
        words.append("sleep")
    return list(dict.fromkeys(words))
