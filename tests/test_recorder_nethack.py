"""The NetHack recorder: a real NLE/MiniHack game, its terminal picture and its truth."""

from __future__ import annotations

import itertools
import random
import warnings

import numpy as np
import pytest

from kibitz.bench.recorders import nethack
from kibitz.bench.recorders.base import EVENT_TYPES, TrueFrame, count_answers
from kibitz.bench.recorders.nethack import CELL_H, NetHackRecorder, monster_names, render_tty
from kibitz.core.errors import KibitzError

pytest.importorskip("nle")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # minihack imports pkg_resources
    pytest.importorskip("minihack")

SEED = 3
SECONDS = 300.0


def _run(seed: int, seconds: float) -> list[TrueFrame]:
    recorder = NetHackRecorder()
    try:
        return list(recorder.frames(seed, seconds))
    finally:
        recorder.close()


@pytest.fixture(scope="module")
def run() -> list[TrueFrame]:
    return _run(SEED, SECONDS)


def test_frames_are_terminal_pictures(run: list[TrueFrame]) -> None:
    assert len(run) == int(SECONDS * NetHackRecorder.fps) + 1
    assert [f.t for f in run[:3]] == [0.0, 0.5, 1.0]
    for frame in run[:50]:
        assert frame.image.shape == (480, 800, 3) and frame.image.dtype == np.uint8
    first = run[0].image
    assert first[-CELL_H:].max() > 100, "the bottom status line is drawn"
    assert first[:CELL_H].max() > 100, "the welcome message is drawn on the top line"
    assert not np.shares_memory(run[0].image, run[1].image)
    assert len({f.image.tobytes() for f in run[:40]}) > 20, "the picture changes as the hero moves"


def test_render_tty_draws_each_cell_in_its_colour() -> None:
    chars = np.full((24, 80), ord(" "), dtype=np.uint8)
    colors = np.zeros((24, 80), dtype=np.uint8)
    blank = render_tty(chars, colors)
    assert blank.shape == (480, 800, 3) and blank.max() == 0
    chars[23, :6] = np.frombuffer(b"Dlvl:1", dtype=np.uint8)
    colors[23, :6] = 1  # red
    image = render_tty(chars, colors)
    drawn = image[-CELL_H:, : 6 * 10]
    assert drawn[..., 0].max() > 100 and drawn[..., 1].max() == 0 and drawn[..., 2].max() == 0
    assert image[: 23 * CELL_H].max() == 0 and image[-CELL_H:, 60:].max() == 0


def test_same_seed_same_run_other_seed_other_run(run: list[TrueFrame]) -> None:
    again = _run(SEED, 60.0)
    for a, b in zip(run, again, strict=False):
        assert np.array_equal(a.image, b.image)
        assert (a.t, a.scene, a.hud, a.events, a.facts) == (b.t, b.scene, b.hud, b.events, b.facts)
    other = _run(SEED + 1, 10.0)
    assert any(not np.array_equal(a.image, b.image) for a, b in zip(run, other, strict=False))


def test_hud_is_what_the_status_line_shows_and_matches_the_game(run: list[TrueFrame]) -> None:
    with_status = [f for f in run if f.hud]
    assert len(with_status) > 0.9 * len(run)
    for frame in with_status:
        assert set(frame.hud) == {"dlvl", "gold", "hp", "max_hp", "ac", "level"}
        status = frame.facts["status"]  # NLE's blstats
        assert {k: status[k] for k in frame.hud} == frame.hud
    assert all(not f.hud for f in run if f.scene == "death" and "status" not in f.facts)


def test_a_run_holds_kills_damage_deaths_and_new_levels(run: list[TrueFrame]) -> None:
    counts = {e: sum(e in f.events for f in run) for e in EVENT_TYPES}
    assert counts["kill"] >= 2 and counts["damage"] >= 2
    assert counts["death"] >= 1 and counts["level_change"] >= 1
    assert all(set(f.events) <= set(EVENT_TYPES) for f in run)
    for prev, frame in itertools.pairwise(run):
        if "kill" in frame.events:
            assert "You kill" in frame.facts["message"] or "You destroy" in frame.facts["message"]
        if "damage" in frame.events:
            assert frame.facts["status"]["hp"] < prev.facts["status"]["hp"]
        if "level_change" in frame.events:
            assert frame.facts["status"]["dlvl"] != prev.facts["status"]["dlvl"]
        if "death" in frame.events:
            assert "game_over" in frame.events and frame.scene == "death"
            assert frame.facts.get("killer")


def test_questions_have_the_true_answers(run: list[TrueFrame]) -> None:
    recorder = NetHackRecorder()
    rng = random.Random(0)
    asked = set()
    for frame in run:
        for qa in recorder.questions(frame, rng):
            asked.add(qa.question)
            assert qa.kind in {"count", "name"}
            status = frame.facts.get("status", {})
            if qa.question == "How many hit points do I have?":
                assert qa.answers == count_answers(status["hp"])
            elif qa.question == "What dungeon level am I on?":
                assert qa.answers == count_answers(status["dlvl"])
            elif qa.question == "How much gold do I have?":
                assert qa.answers == count_answers(status["gold"])
            else:
                assert qa.question == "What killed me?" and frame.scene == "death"
                assert frame.facts["killer"] in qa.answers
    assert "What killed me?" in asked and "How many hit points do I have?" in asked


def test_death_screen_names_the_killer(run: list[TrueFrame]) -> None:
    names = set(monster_names())
    ends = [f for f in run if f.scene == "death" and "status" not in f.facts]
    assert ends, "the end-of-game screen is shown after a death"
    assert all(f.facts["killer"] and f.facts["killer"] in f.facts["killers"] for f in ends)
    assert any(f.facts["killer"] in names for f in ends)
    for i, frame in enumerate(run):
        if "death" in frame.events:  # the death frame already knows what the end screen will name
            after = [f for f in run[i : i + 10] if f.scene == "death"]
            assert all(f.facts["killers"] == frame.facts["killers"] for f in after)


def test_advice_names_real_nearby_threats(run: list[TrueFrame]) -> None:
    recorder = NetHackRecorder()
    names = set(monster_names())
    keys = [(f, recorder.advice(f)) for f in run]
    with_key = [(f, k) for f, k in keys if k is not None]
    assert with_key, "monsters come within three squares"
    for frame, key in with_key:
        assert key.kind == "threat" and key.good
        assert set(key.good) <= names
        assert set(key.good) <= set(frame.facts["monsters"])
    assert any(k is None for _, k in keys)


def test_missing_package_is_a_kibitz_error(monkeypatch: pytest.MonkeyPatch) -> None:
    real = nethack.importlib.util.find_spec
    monkeypatch.setattr(nethack.importlib.util, "find_spec", lambda name: None if name == "nle" else real(name))
    with pytest.raises(KibitzError, match="pip install nle"):
        NetHackRecorder().check_installed()
