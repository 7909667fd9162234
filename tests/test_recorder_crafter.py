"""The Crafter recorder: a real game run, its truth checked against the environment and the screen."""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import random
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

pytest.importorskip("crafter")

import crafter

from kibitz.bench.recorders import RECORDERS, TrueFrame
from kibitz.bench.recorders.crafter import (
    ACHIEVEMENT_WORDS,
    SIZE,
    CrafterRecorder,
    achievement_answers,
    advice_words,
    semantic_names,
)
from kibitz.core.errors import KibitzError

SECONDS = 60.0
UNIT = SIZE // 9
"""Tile size in pixels; the picture has a 2-pixel border."""


def _digest(image: Any) -> str:
    return hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest()


@pytest.fixture(scope="module")
def recorded() -> tuple[list[TrueFrame], list[dict[str, int]]]:
    """A minute of play, and the inventory the environment itself reported after every reset and step."""
    log: list[dict[str, int]] = []
    real_step, real_reset = crafter.Env.step, crafter.Env.reset

    def step(self: Any, action: int) -> Any:
        out = real_step(self, action)
        log.append(dict(out[3]["inventory"]))
        return out

    def reset(self: Any) -> Any:
        out = real_reset(self)
        log.append(dict(self._player.inventory))
        return out

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(crafter.Env, "step", step)
        mp.setattr(crafter.Env, "reset", reset)
        frames = list(CrafterRecorder().frames(0, SECONDS))
    return frames, log


@pytest.fixture(scope="module")
def frames(recorded: tuple[list[TrueFrame], list[dict[str, int]]]) -> list[TrueFrame]:
    return recorded[0]


def test_registered_and_described() -> None:
    assert RECORDERS.get("crafter") is CrafterRecorder
    rec = CrafterRecorder()
    rec.check_installed()
    assert (rec.game, rec.genre, rec.fps, rec.clip_fps) == ("crafter", "survival-crafting", 10.0, 10.0)
    assert "crafter" in rec.install_hint


def test_missing_package_names_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "crafter" else real(name, *a))
    with pytest.raises(KibitzError, match="pip install crafter"):
        CrafterRecorder().check_installed()


def test_frames_are_pictures_and_copies(frames: list[TrueFrame]) -> None:
    assert len(frames) == int(SECONDS * 10) + 1
    assert frames[10].t == pytest.approx(1.0)
    first = frames[0].image
    assert first.shape == (SIZE, SIZE, 3) and first.dtype == np.uint8
    assert len({_digest(f.image) for f in frames[:100]}) > 30
    rec = CrafterRecorder()
    it = rec.frames(0, 2.0)
    image = next(it).image
    before = _digest(image)
    list(it)
    assert _digest(image) == before


def test_semantic_ids_match_the_environment() -> None:
    env = crafter.Env(seed=0)
    view = env._sem_view
    names = semantic_names()
    for material, i in view._mat_ids.items():
        assert names[i] == material
    for cls, i in view._obj_ids.items():
        assert names[i] == cls.__name__.lower()


def test_same_seed_same_run_other_seed_other_run() -> None:
    def head(seed: int) -> list[Any]:
        return [
            (_digest(f.image), f.scene, f.hud, f.events, f.facts)
            for f in itertools.islice(CrafterRecorder().frames(seed, 10.0), 50)
        ]

    a, b, c = head(0), head(0), head(1)
    assert a == b
    assert [x[0] for x in a] != [x[0] for x in c]


def test_replays_in_another_process(frames: list[TrueFrame]) -> None:
    """Crafter orders creatures by memory address (a set): the recorder must make runs replayable anyway."""
    code = (
        "import hashlib, itertools\n"
        "from kibitz.bench.recorders.crafter import CrafterRecorder\n"
        "h = hashlib.sha1()\n"
        "for f in itertools.islice(CrafterRecorder().frames(0, 60.0), 300):\n"
        "    h.update(f.image.tobytes()); h.update(repr((f.hud, f.facts)).encode())\n"
        "print(h.hexdigest())\n"
    )
    here = hashlib.sha1()
    for f in frames[:300]:
        here.update(f.image.tobytes())
        here.update(repr((f.hud, f.facts)).encode())
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == here.hexdigest()


def test_hud_is_the_environment_inventory_as_drawn(
    recorded: tuple[list[TrueFrame], list[dict[str, int]]],
) -> None:
    frames, log = recorded
    assert len(log) == len(frames)  # one frame per reset or step
    for frame, inventory in zip(frames, log, strict=True):
        assert frame.hud == {k: v for k, v in inventory.items() if v >= 1}
        assert frame.facts["inventory"] == inventory
    # The render draws an icon (with its count) in an inventory slot exactly for the items in the HUD.
    names = list(crafter.constants.items)
    for frame in frames[::25]:
        for index, name in enumerate(names):
            col, row = index % 9, index // 9
            x, y = 2 + col * UNIT, 2 + (7 + row) * UNIT
            drawn = frame.image[y : y + UNIT, x : x + UNIT].any()
            assert drawn == (name in frame.hud), (frame.t, name)


def test_a_minute_unlocks_achievements(frames: list[TrueFrame]) -> None:
    unlocked = [f for f in frames if "achievement" in f.events]
    assert len(unlocked) >= 5
    names = {f.facts["new_achievement"] for f in unlocked}
    assert {"collect_wood", "place_table", "make_wood_pickaxe"} <= names
    for i, frame in enumerate(frames):
        new = frame.facts.get("new_achievement")
        assert (new is not None) == ("achievement" in frame.events)
        if new and i and "death" not in frames[i - 1].events:
            assert new in frame.facts["achievements"] and new not in frames[i - 1].facts["achievements"]
            assert new in crafter.constants.achievements


def test_damage_and_death_follow_health(frames: list[TrueFrame]) -> None:
    assert any("damage" in f.events for f in frames)
    for before, frame in itertools.pairwise(frames):
        if "death" in before.events:
            assert frame.facts["inventory"]["health"] == 9 and frame.facts["achievements"] == []
            continue
        dropped = frame.facts["inventory"]["health"] < before.facts["inventory"]["health"]
        dead = frame.facts["inventory"]["health"] == 0
        assert ("damage" in frame.events) == (dropped and not dead)
        assert ("death" in frame.events) == dead
        if dead:
            assert frame.scene == "death" and "game_over" in frame.events


def test_sleep_is_its_own_scene(frames: list[TrueFrame]) -> None:
    sleeping = [f for f in frames if f.scene == "sleeping"]
    awake = [f for f in frames if f.scene == "gameplay"]
    assert sleeping and awake
    # Crafter greys the view while the player sleeps (then tints it blue): red equals green everywhere.
    view = slice(2, 2 + 7 * UNIT)

    def grey(frame: TrueFrame) -> float:
        return float((frame.image[view, :, 0] == frame.image[view, :, 1]).mean())

    assert min(grey(f) for f in sleeping) > 0.99
    assert max(grey(f) for f in awake) < 0.9


def test_nearby_is_what_the_view_shows(frames: list[TrueFrame]) -> None:
    seen = {n for f in frames for n in f.facts["nearby"]}
    assert {"tree", "table"} <= seen
    assert not seen & {"grass", "sand", "path", "player"}
    for frame in frames:
        assert set(frame.facts["threats"]) <= {"zombie", "skeleton"} & set(frame.facts["nearby"])


def test_questions_match_the_truth(frames: list[TrueFrame]) -> None:
    rec = CrafterRecorder()
    rng = random.Random(0)
    asked = set()
    for frame in frames:
        qas = rec.questions(frame, rng)
        assert 1 <= len(qas) <= 3 or frame.scene == "death"
        for qa in qas:
            asked.add(qa.question)
            if qa.question == "What did I just unlock?":
                assert qa.kind == "name"
                assert frame.facts["new_achievement"].replace("_", " ") in qa.answers
            else:
                assert qa.kind == "count"
                key = {"What's my health?": "health", "How much wood do I have?": "wood"}.get(qa.question)
                if key:
                    assert qa.answers[0] == str(frame.hud[key])
    assert {"What did I just unlock?", "What's my health?", "How much wood do I have?"} <= asked


def test_advice_names_useful_next_steps(frames: list[TrueFrame]) -> None:
    rec = CrafterRecorder()
    keyed = 0
    for frame in frames:
        key = rec.advice(frame)
        if frame.scene != "gameplay":
            assert key is None
            continue
        if "collect_wood" not in frame.facts["achievements"] and "tree" in frame.facts["nearby"]:
            assert key is not None and "wood" in key.good
        if frame.facts["threats"]:
            assert key is not None and set(frame.facts["threats"]) <= set(key.good)
        if key is not None:
            assert key.kind == "achievement" and key.good
            keyed += 1
    assert keyed > len(frames) // 2


def test_advice_words_follow_the_recipes() -> None:
    empty = {k: 0 for k in crafter.constants.items} | {"health": 9, "food": 9, "drink": 9, "energy": 9}
    assert "table" not in advice_words(empty, set(), set(), False)
    assert "table" in advice_words(empty | {"wood": 2}, set(), set(), False)
    assert "table" in advice_words(empty | {"wood": 1}, set(), {"tree"}, False)  # one more chop
    assert "table" not in advice_words(empty | {"wood": 2}, {"place_table"}, set(), False)
    assert "pickaxe" in advice_words(empty | {"wood": 1}, {"place_table"}, {"table"}, True)
    assert "pickaxe" not in advice_words(empty | {"wood": 1}, {"place_table"}, set(), False)
    assert "stone" in advice_words(empty | {"wood_pickaxe": 1}, set(), {"stone"}, False)
    assert "stone" not in advice_words(empty, {"place_stone"}, {"stone"}, False)
    assert "water" in advice_words(empty | {"drink": 2}, {"collect_drink"}, set(), False)
    assert "sleep" in advice_words(empty | {"energy": 2}, set(), set(), False)


def test_achievement_answers_cover_every_achievement() -> None:
    assert set(ACHIEVEMENT_WORDS) == set(crafter.constants.achievements)
    assert achievement_answers("collect_wood") == ("collect wood", "collect_wood", "wood")
    assert "table" in achievement_answers("place_table")
