"""Recorders for kibitz's built-in emulated games (Super Mario Bros., Atari 2600) and for Pong, an Atari game
kibitz has no assets for (an unseen game for the bench)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from functools import cache
from importlib import resources
from typing import Any, ClassVar

import yaml

from kibitz.bench.recorders.base import QA, AdviceKey, Recorder, TrueFrame, count_answers, hud_shown, one_colour
from kibitz.games import get_game
from kibitz.games.atari import INSTALL_HINT as ATARI_HINT
from kibitz.games.atari import AtariAdapter, RandomFirePlayer
from kibitz.games.base import GameAdapter


class EmulatedRecorder(Recorder):
    """A kibitz GameAdapter's emulator and built-in player, with its RAM as the truth."""

    fps = 60.0
    clip_fps = 15.0
    adapter_id: ClassVar[str]

    def __init__(self) -> None:
        self.adapter: GameAdapter = self.make_adapter()
        # Which scenes show which HUD field: the bench's own labels (bench/prompts/hud_shown.yaml), never kibitz's
        # HUD files; a game without labels shows every field it has.
        self.shown: dict[str, tuple[str, ...] | None] = dict(hud_shown(self.adapter.id))

    def make_adapter(self) -> GameAdapter:
        return get_game(self.adapter_id)

    def check_installed(self) -> None:
        self.adapter.check_installed()

    def visible_hud(self, hud: dict[str, Any], scene: str, blank: bool) -> dict[str, Any]:
        if blank:
            return {}
        names = self.shown or dict.fromkeys(self.hud_fields())
        return {k: hud[k] for k, scenes in names.items() if k in hud and (scenes is None or scene in scenes)}

    def hud_fields(self) -> tuple[str, ...]:
        return ("score", "lives")

    def truth_events(self, prev: dict[str, Any], state: dict[str, Any], scene: str, prev_scene: str) -> list[str]:
        """Event types that happened between two consecutive states."""
        events = []
        if prev.get("lives") is not None and state.get("lives") is not None and state["lives"] < prev["lives"]:
            events.append("death")
        if scene == "game_over" != prev_scene:
            events.append("game_over")
        return events

    def frames(self, seed: int, seconds: float) -> Iterator[TrueFrame]:
        self.check_installed()
        env = self.adapter.make_env()
        player = self.adapter.make_player(seed)
        try:
            image = env.reset(seed)
            prev_hud: dict[str, Any] = {}
            prev_scene = ""
            index = 0
            while index / self.fps <= seconds:
                state = env.state()
                hud = self.adapter.hud(state)
                # A one-colour picture shows nothing (the truth's own test, not perception's is_blank).
                blank = one_colour(image)
                scene = self.adapter.visual_scene(state, image, blank=blank)
                events = self.truth_events(prev_hud, hud, self.adapter.scene(state), prev_scene) if index else []
                visible = self.visible_hud(hud, scene, blank)
                # The consoles draw the HUD from the previous frame's memory: either value is on screen.
                facts = {"hud_alt": {k: prev_hud[k] for k in visible if k in prev_hud and prev_hud[k] != hud[k]}}
                facts.update(self.frame_facts(state))
                yield TrueFrame(index / self.fps, image.copy(), scene, visible, events, facts)
                prev_hud, prev_scene = hud, self.adapter.scene(state)
                image = env.reset(seed + index) if env.finished else env.step(player.act(state, index))
                index += 1
        finally:
            env.close()

    def frame_facts(self, state: dict[str, Any]) -> dict[str, Any]:
        """More truth about a frame for the answer keys (e.g. the enemies on screen)."""
        return {}

    def questions(self, frame: TrueFrame, rng: random.Random) -> list[QA]:
        asks = {
            "lives": ("How many lives do I have left?", "count"),
            "score": ("What's my score?", "count"),
            "coins": ("How many coins do I have?", "count"),
            "time": ("How much time is left on the clock?", "count"),
            "world": ("Which world am I in?", "count"),
            "player_score": ("What's my score?", "count"),
            "cpu_score": ("How many points does the computer have?", "count"),
        }
        qas = []
        for name, (question, kind) in asks.items():
            value = frame.hud.get(name)
            if isinstance(value, int) and name not in frame.facts.get("hud_alt", {}):
                answers = count_answers(value) if name != "world" else (f"{value}-{frame.hud.get('stage', '')}",)
                qas.append(QA(question, answers, kind))
        rng.shuffle(qas)
        return qas[:2]


@cache
def smb_enemies() -> dict[int, str]:
    """The bench's own names for SMB's enemy object ids (bench/data/smb_enemies.yaml)."""
    text = (resources.files("kibitz.bench") / "data" / "smb_enemies.yaml").read_text(encoding="utf-8")
    return {int(k): str(v) for k, v in yaml.safe_load(text).items()}


THREAT_BEHIND_PX, THREAT_AHEAD_PX = 64, 176
"""An enemy this far behind or ahead of Mario (in level pixels) is on the 256-pixel-wide screen with him (the
screen scrolls to keep him at most about 112 pixels from its left edge)."""


class SMBRecorder(EmulatedRecorder):
    hud_labels: ClassVar[dict[str, tuple[str, ...]]] = {
        "score": ("MARIO",),
        "coins": ("×", "x"),
        "world": ("WORLD",),
        "time": ("TIME",),
    }
    game = "smb"
    title = "Super Mario Bros."
    genre = "platformer"
    adapter_id = "smb"
    install_hint = "pip install cynes==0.1.2 && pip install --no-deps gym-super-mario-bros==7.4.0"

    def hud_fields(self) -> tuple[str, ...]:
        return ("world", "stage", "lives", "score", "coins", "time")

    def frame_facts(self, state: dict[str, Any]) -> dict[str, Any]:
        """The enemies on screen around Mario (RAM: each active slot's position and object id), named as players
        name them (the SMB disassembly's constants, in the bench's own table)."""
        names = smb_enemies()
        x = state.get("x", 0)
        threats = [
            names[kind]
            for (ex, _), kind in zip(state.get("enemies", []), state.get("enemy_ids", []), strict=False)
            if kind in names and -THREAT_BEHIND_PX <= ex - x <= THREAT_AHEAD_PX
        ]
        return {"threats": list(dict.fromkeys(threats))}

    def advice(self, frame: TrueFrame) -> AdviceKey | None:
        """ "What should I watch out for?" while enemies are on screen: useful advice names one of them (its full
        name, or the first word players use for it: "Koopa")."""
        threats = frame.facts.get("threats")
        if frame.scene != "gameplay" or not threats:
            return None
        good = [form for name in threats for form in (name, name.split()[0].removesuffix("'s"))]
        return AdviceKey("threat", tuple(dict.fromkeys(good)), "What should I watch out for?")

    def truth_events(self, prev: dict[str, Any], state: dict[str, Any], scene: str, prev_scene: str) -> list[str]:
        events = super().truth_events(prev, state, scene, prev_scene)
        level, before = (state.get("world"), state.get("stage")), (prev.get("world"), prev.get("stage"))
        if None not in before and level != before and scene not in ("title", "game_over"):
            events.append("level_change")
        return events


class AtariRecorder(EmulatedRecorder):
    genre = "atari-arcade"
    install_hint = ATARI_HINT


def _atari(adapter_id: str) -> type[AtariRecorder]:
    adapter = get_game(adapter_id)
    return type(
        f"{type(adapter).__name__}Recorder",
        (AtariRecorder,),
        {"game": adapter_id, "title": adapter.title, "adapter_id": adapter_id, "__module__": __name__},
    )


atari_recorder_breakout = _atari("breakout")
atari_recorder_space_invaders = _atari("space_invaders")
atari_recorder_seaquest = _atari("seaquest")
atari_recorder_ms_pacman = _atari("ms_pacman")
atari_recorder_riverraid = _atari("riverraid")
atari_recorder_asteroids = _atari("asteroids")
atari_recorder_freeway = _atari("freeway")


class _Pong(AtariAdapter):
    """Pong as a bare Atari adapter: kibitz ships no HUD file or prototypes for it (an unseen game)."""

    id = "pong"
    title = "Pong"
    genre = "sports"
    rom = "pong"
    milestone = 5

    def make_player(self, seed: int) -> RandomFirePlayer:
        return RandomFirePlayer(seed)

    def hud(self, state: dict[str, Any]) -> dict[str, Any]:
        if not state:
            return {}
        ram = state["ram"]  # the two scores drawn at the top (RAM 13: the computer, 14: the player)
        return {"cpu_score": int(ram[13]), "player_score": int(ram[14])}


class PongRecorder(AtariRecorder):
    game = "pong"
    title = "Pong"
    genre = "atari-sports"
    adapter_id = "pong"

    def make_adapter(self) -> GameAdapter:
        return _Pong()

    def hud_fields(self) -> tuple[str, ...]:
        return ("cpu_score", "player_score")

    def truth_events(self, prev: dict[str, Any], state: dict[str, Any], scene: str, prev_scene: str) -> list[str]:
        return ["game_over"] if scene == "game_over" != prev_scene else []
