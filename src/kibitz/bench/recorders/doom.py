"""Freedoom through ViZDoom, with its true state from the engine.

The map is ViZDoom's own `defend_the_line` scenario (it ships inside the vizdoom package with the Freedoom
IWADs): the player stands at one end of a corridor, flesh worms (Doom's demons) charge and serpentipedes
(imps) throw fireballs, and every monster killed comes back tougher. The picture is the 320×240 view with the
classic status bar (ammo, health, armour). The truth comes from the engine: its game variables, its labels
buffer (which monsters are on screen) and its obituary messages (what killed the player). The game runs as a
one-player co-op session, so a death does not end the episode at once and the death view can be recorded;
after it a new episode starts and the run goes on.
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import random
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from kibitz.bench.recorders.base import QA, AdviceKey, Recorder, TrueFrame, count_answers, hud_questions
from kibitz.core.errors import KibitzError

INSTALL_HINT = "pip install vizdoom==1.3.2"

SCENARIO = "defend_the_line"
WIDTH, HEIGHT = 320, 240
DEATH_HOLD = 70
"""Tics of death view recorded before the next episode starts (2 s)."""
EPISODE_TIMEOUT = 35 * 600
"""A survivor's episode ends after 10 minutes of game time (the scenario itself has no time limit)."""
MIN_PIXELS = 8
"""A monster counts as in view when at least this many of its pixels are on screen (not hidden behind
another monster, a wall or the gun)."""
MIN_COUNT_PIXELS = 40
"""A count question is asked only when every monster partly on screen shows at least this many pixels."""

MONSTER_NAMES: dict[str, tuple[str, ...]] = {
    "Zombieman": ("zombie", "zombieman", "former human"),
    "ShotgunGuy": ("shotgun zombie", "shotgun guy", "sergeant"),
    "ChaingunGuy": ("minigun zombie", "chaingunner", "chaingun guy"),
    "DoomImp": ("serpentipede", "imp"),
    "Demon": ("flesh worm", "demon", "pinky"),
    "Spectre": ("stealth worm", "spectre"),
    "LostSoul": ("hatchling", "lost soul"),
    "Cacodemon": ("trilobite", "cacodemon", "trilo"),
    "HellKnight": ("pain bringer", "hell knight"),
    "BaronOfHell": ("pain lord", "baron of hell", "baron"),
    "Arachnotron": ("technospider", "arachnotron"),
    "Revenant": ("octaminator", "revenant"),
    "Fatso": ("combat slug", "mancubus"),
    "Archvile": ("necromancer", "arch-vile", "archvile"),
    "Cyberdemon": ("assault tripod", "cyberdemon"),
    "SpiderMastermind": ("large technospider", "spider mastermind"),
    "MarineChainsawVzd": ("chainsaw marine", "marine", "chainsaw"),
}
"""Monster classes (as the labels buffer names them) → what a player calls them: the Freedoom name the game
shows in its messages first, then the classic Doom names."""


def monster_names(cls: str) -> tuple[str, ...]:
    """The names a player may use for a monster class (the class name itself, lowercase, when unknown)."""
    return MONSTER_NAMES.get(cls, (cls.lower(),))


def obituary_killer(message: str) -> str | None:
    """The monster class an obituary ("Player was scorched by a serpentipede.") names, if any."""
    text = message.lower()
    pairs = sorted(((n, cls) for cls, names in MONSTER_NAMES.items() for n in names), key=lambda p: -len(p[0]))
    for name, cls in pairs:
        if name in text:
            return cls
    return None


@dataclass
class Life:
    """One episode as the recorder has seen it so far."""

    health: int | None = None
    kills: int = 0
    hits: int = 0
    dead: bool = False
    dead_tics: int = 0
    killer: str | None = None
    """Monster class named by the obituary."""
    attacker: str | None = None
    """The nearest monster on screen when the player last lost health (used when no obituary names one)."""
    shown: dict[str, int] | None = None
    """The status bar values of the last frame: the status bar is drawn one tic behind the game."""


@dataclass
class Visible:
    """A monster in view (from the labels buffer)."""

    cls: str
    id: int
    x: int
    width: int
    height: int
    pixels: int
    """Pixels of it on screen (from the labels buffer)."""

    @property
    def centre(self) -> float:
        return self.x + self.width / 2


class Gunner:
    """Turns toward a monster and shoots; charging flesh worms first. Its aim wobbles, it hesitates and now
    and then it looks away for a while, so monsters get through and it dies now and then."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.target: int | None = None
        self.lapse = 0
        """Tics left of a lapse (looking around, not shooting)."""
        self.lapse_turn = 0.0
        self.wobble = 0.0

    def act(self, monsters: list[Visible]) -> list[float]:
        """[ATTACK, TURN_LEFT_RIGHT_DELTA] for the next tic."""
        if self.lapse > 0:
            self.lapse -= 1
            return [0.0, self.lapse_turn]
        if self.rng.random() < 0.006:
            self.lapse = self.rng.randint(20, 80)
            self.lapse_turn = self.rng.choice((-1, 1)) * self.rng.uniform(0.5, 3.0)
        if not monsters:
            self.target = None
            return [0.0, 3.0]
        by_id = {m.id: m for m in monsters}
        if self.target not in by_id or self.rng.random() < 0.02:
            # The nearest (tallest on screen) monster, flesh worms counting double: they charge.
            self.target = max(monsters, key=lambda m: m.height * (2 if m.cls == "Demon" else 1)).id
        aim = by_id[self.target]
        if self.rng.random() < 0.05:
            self.wobble = self.rng.gauss(0.0, 6.0)
        offset = math.degrees(math.atan((aim.centre - WIDTH / 2) / (WIDTH / 2))) + self.wobble
        turn = max(-6.0, min(6.0, offset * self.rng.uniform(0.3, 0.8)))
        on_target = abs(aim.centre - WIDTH / 2) <= aim.width / 2 + 2
        fire = on_target and self.rng.random() < 0.7
        return [1.0 if fire else 0.0, turn]


class DoomRecorder(Recorder):
    """Freedoom's defend_the_line arena, played by a sloppy gunner."""

    game = "doom"
    title = "Freedoom (ViZDoom)"
    genre = "fps"
    fps = 35.0
    clip_fps = 12.0
    install_hint = INSTALL_HINT
    hud_labels: ClassVar[dict[str, tuple[str, ...]]] = {  # the status bar's captions, under their numbers
        "ammo": ("AMMO@above",),
        "health": ("HEALTH@above",),
        "armor": ("ARMOR@above",),
    }

    screen_flashes: ClassVar[bool] = True
    """Tint the screen red when hurt (and gold on pickups), as the game does; the status bar is tinted too."""

    def __init__(self) -> None:
        self._game: Any = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._made_dir: Path | None = None

    def check_installed(self) -> None:
        if importlib.util.find_spec("vizdoom") is None:
            raise KibitzError(f"Doom needs the vizdoom package, which is missing: {INSTALL_HINT}")

    def _start(self, seed: int) -> Any:
        import vizdoom as vzd

        self.close()
        # ViZDoom makes an empty _vizdoom folder in the working directory; remove it again if it was not there.
        work = Path.cwd() / "_vizdoom"
        self._made_dir = None if work.exists() else work
        self._tmp = tempfile.TemporaryDirectory(prefix="kibitz-vizdoom-")
        game = vzd.DoomGame()
        game.load_config(str(Path(vzd.scenarios_path) / f"{SCENARIO}.cfg"))
        game.set_doom_config_path(str(Path(self._tmp.name) / "vizdoom.ini"))
        game.set_window_visible(False)
        game.set_sound_enabled(False)
        game.set_mode(vzd.Mode.PLAYER)
        game.set_screen_format(vzd.ScreenFormat.RGB24)
        game.set_screen_resolution(vzd.ScreenResolution.RES_320X240)
        game.set_render_hud(True)
        game.set_render_screen_flashes(self.screen_flashes)
        game.set_labels_buffer_enabled(True)
        game.set_notifications_buffer_enabled(True)
        game.set_episode_timeout(EPISODE_TIMEOUT)
        game.set_available_buttons([vzd.Button.ATTACK, vzd.Button.TURN_LEFT_RIGHT_DELTA])
        game.set_available_game_variables(
            [
                vzd.GameVariable.HEALTH,
                vzd.GameVariable.ARMOR,
                vzd.GameVariable.SELECTED_WEAPON_AMMO,
                vzd.GameVariable.KILLCOUNT,
                vzd.GameVariable.HITCOUNT,
            ]
        )
        # One-player co-op: death no longer ends the episode, so the death view can be recorded (the
        # co-op scoreboard that would cover it is switched off).
        game.add_game_args("-host 1 +sb_cooperative_enable 0")
        game.set_seed(seed % 2**31)
        game.init()
        self._game = game
        return game

    def close(self) -> None:
        if self._game is not None:
            self._game.close()
            self._game = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        if self._made_dir is not None:
            with contextlib.suppress(OSError):
                self._made_dir.rmdir()  # only when empty
            self._made_dir = None

    def frames(self, seed: int, seconds: float) -> Iterator[TrueFrame]:
        self.check_installed()
        game = self._start(seed)
        player = Gunner(random.Random(f"doom-player:{seed}"))
        try:
            game.new_episode()
            life = Life()
            index = 0
            while True:
                if game.is_episode_finished() or life.dead_tics >= DEATH_HOLD:
                    game.new_episode()
                    life = Life()
                state = game.get_state()
                monsters = _monsters(state)
                yield self._frame(index / self.fps, state, monsters, life, bool(game.is_player_dead()))
                index += 1
                if index / self.fps > seconds:
                    return
                if life.dead:
                    life.dead_tics += 1
                    game.make_action([0.0, 0.0], 1)
                else:
                    game.make_action(player.act([m for m in monsters if m.pixels >= MIN_PIXELS]), 1)
        finally:
            self.close()

    def _frame(self, t: float, state: Any, monsters: list[Visible], life: Life, dead: bool) -> TrueFrame:
        health, armor, ammo, kills, hits = (int(v) for v in state.game_variables)
        in_view = [m for m in monsters if m.pixels >= MIN_PIXELS]
        events: list[str] = []
        cause = obituary_killer(state.notifications_buffer or "")
        if cause is not None:
            life.killer = cause
        if dead and not life.dead:
            life.dead = True
            events.append("death")
        elif not dead and life.health is not None and health < life.health:
            events.append("damage")
            if in_view:
                life.attacker = max(in_view, key=lambda m: m.height).cls
        if kills > life.kills and hits > life.hits:
            events.append("kill")  # the player's shot hit on the tic a monster died (not monsters' infighting)
        life.health, life.kills, life.hits = health, kills, hits

        facts: dict[str, Any] = {"monsters": sorted(m.cls for m in in_view)}
        if not dead:
            facts["countable"] = all(m.pixels == 0 or m.pixels >= MIN_COUNT_PIXELS for m in monsters)
        killer = life.killer or life.attacker
        if life.dead and killer is not None:
            facts["killer"] = monster_names(killer)[0]
            facts["killer_class"] = killer
        values = {"health": max(0, health), "ammo": ammo, "armor": armor}
        # The status bar shows the previous tic's values; on an episode's first frame they are not known.
        hud, life.shown = life.shown or {}, values
        image = state.screen_buffer.copy()
        return TrueFrame(t, image, "death" if life.dead else "gameplay", hud, events, facts)

    # -- questions and advice ----------------------------------------------------------------------------

    def questions(self, frame: TrueFrame, rng: random.Random) -> list[QA]:
        qas = hud_questions(frame.hud, {"health": "How much health do I have?", "ammo": "How much ammo is left?"})
        if frame.scene == "gameplay" and frame.facts.get("countable"):
            qas.append(QA("How many enemies can you see?", count_answers(len(frame.facts["monsters"])), "count"))
        rng.shuffle(qas)
        killer = frame.facts.get("killer_class")
        if frame.scene == "death" and killer:
            qas.insert(0, QA("What killed me?", monster_names(killer), "name"))
        return qas[:3]

    def advice(self, frame: TrueFrame) -> AdviceKey | None:
        monsters = frame.facts.get("monsters")
        if frame.scene != "gameplay" or not monsters:
            return None
        good = tuple(dict.fromkeys(n for cls in monsters for n in monster_names(cls)))
        return AdviceKey("threat", good, "What should I watch out for?")


def _monsters(state: Any) -> list[Visible]:
    """The monsters the labels buffer names, with how many of their pixels are on screen."""
    labels = [lb for lb in state.labels if lb.object_category == "Monster"]
    if not labels:
        return []
    pixels = np.bincount(state.labels_buffer.ravel(), minlength=256)
    return [
        Visible(lb.object_name, int(lb.object_id), int(lb.x), int(lb.width), int(lb.height), int(pixels[lb.value]))
        for lb in labels
    ]
