"""The Freedoom (ViZDoom) recorder: a real game run, its truth checked against the engine and the screen."""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import random
from collections import defaultdict
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("vizdoom")

from kibitz.bench.recorders import RECORDERS, TrueFrame
from kibitz.bench.recorders.base import count_answers
from kibitz.bench.recorders.doom import MONSTER_NAMES, DoomRecorder, monster_names, obituary_killer
from kibitz.core.errors import KibitzError

SECONDS = 60.0
# Status bar boxes (rows, columns) of the 320×240 picture: the big ammo, health and armour numbers.
BOXES = {"ammo": (slice(210, 230), slice(2, 46)), "health": (slice(210, 230), slice(50, 104))}
BOXES["armor"] = (slice(210, 230), slice(180, 234))


@dataclass
class Run:
    """One recorded run, light enough to keep (hashes instead of most pictures)."""

    frames: list[TrueFrame] = field(default_factory=list)
    """Every frame with its image replaced by an empty array (the truth only)."""
    hashes: list[str] = field(default_factory=list)
    first_image: Any = None
    first_hash: str = ""


def record(seed: int, seconds: float, recorder: DoomRecorder | None = None, limit: int | None = None) -> Run:
    run = Run()
    rec = recorder or DoomRecorder()
    for frame in itertools.islice(rec.frames(seed, seconds), limit):
        if run.first_image is None:
            run.first_image, run.first_hash = frame.image, _digest(frame.image)
        run.hashes.append(_digest(frame.image))
        run.frames.append(TrueFrame(frame.t, np.zeros(0, np.uint8), frame.scene, frame.hud, frame.events, frame.facts))
    return run


def _digest(image: Any) -> str:
    return hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest()


@pytest.fixture(scope="module")
def run() -> Run:
    return record(0, SECONDS)


def events(run: Run, kind: str) -> list[int]:
    return [i for i, f in enumerate(run.frames) if kind in f.events]


def test_registered_and_described() -> None:
    assert RECORDERS.get("doom") is DoomRecorder
    rec = DoomRecorder()
    rec.check_installed()
    assert (rec.game, rec.genre, rec.fps) == ("doom", "fps", 35.0)
    assert rec.clip_fps < rec.fps
    assert "vizdoom" in rec.install_hint


def test_missing_package_names_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "vizdoom" else real(name, *a))
    with pytest.raises(KibitzError, match="pip install vizdoom"):
        DoomRecorder().check_installed()


def test_frames_are_pictures_and_copies(run: Run) -> None:
    assert run.first_image.shape == (240, 320, 3) and run.first_image.dtype == np.uint8
    assert _digest(run.first_image) == run.first_hash  # later frames did not overwrite it
    assert len(run.frames) == int(SECONDS * 35) + 1
    assert run.frames[35].t == pytest.approx(1.0)
    assert len(set(run.hashes[:100])) > 50  # the picture moves


def test_same_seed_same_run_other_seed_other_run() -> None:
    a, b, c = record(0, 5.0, limit=50), record(0, 5.0, limit=50), record(1, 5.0, limit=50)
    assert a.hashes == b.hashes
    assert [(f.scene, f.hud, f.events, f.facts) for f in a.frames] == [
        (f.scene, f.hud, f.events, f.facts) for f in b.frames
    ]
    assert a.hashes != c.hashes


def test_a_minute_holds_kills_damage_and_a_death(run: Run) -> None:
    assert len(events(run, "kill")) >= 3
    assert len(events(run, "damage")) >= 3
    assert len(events(run, "death")) >= 1
    assert all(set(f.events) <= {"kill", "damage", "death"} for f in run.frames)


def test_death_view_names_the_killer(run: Run) -> None:
    for i in events(run, "death"):
        dying = run.frames[i]
        assert dying.scene == "death" and run.frames[i - 1].scene == "gameplay"
        assert dying.facts["killer_class"] in MONSTER_NAMES
        assert dying.facts["killer"] == monster_names(dying.facts["killer_class"])[0]
        # The death view lasts until a new episode starts with full health.
        after = list(itertools.takewhile(lambda f: f.scene == "death", run.frames[i:]))
        assert 30 <= len(after) <= 80
        assert all(f.facts["killer"] == dying.facts["killer"] and not f.events for f in after[1:])
        if i + len(after) + 1 < len(run.frames):
            nxt = run.frames[i + len(after) + 1]
            assert nxt.scene == "gameplay" and nxt.hud["health"] == 100
    assert not any("killer" in f.facts for f in run.frames if f.scene == "gameplay")


def test_damage_shows_on_the_status_bar_next(run: Run) -> None:
    # The status bar is drawn a tic behind: the health it shows drops on the frame after the damage.
    for i in events(run, "damage"):
        if i + 1 < len(run.frames) and run.frames[i].hud:
            assert run.frames[i + 1].hud["health"] < run.frames[i].hud["health"]


def test_hud_is_what_the_status_bar_shows() -> None:
    """Without the red damage tint the status bar numbers are pixel-exact: each HUD value must always look
    the same, and different values must look different."""

    class Untinted(DoomRecorder):
        screen_flashes = False

    looks: dict[str, dict[int, set[str]]] = {k: defaultdict(set) for k in BOXES}
    rec = Untinted()
    for frame in rec.frames(0, 30.0):
        for name, (rows, cols) in BOXES.items():
            if name in frame.hud:
                looks[name][frame.hud[name]].add(_digest(frame.image[rows, cols]))
    assert len(looks["health"]) >= 5 and len(looks["ammo"]) >= 5
    for name, by_value in looks.items():
        assert all(len(h) == 1 for h in by_value.values()), name
        assert len({next(iter(h)) for h in by_value.values()}) == len(by_value), name


def test_monsters_are_monsters(run: Run) -> None:
    seen = {m for f in run.frames for m in f.facts["monsters"]}
    assert {"DoomImp", "Demon"} <= seen <= set(MONSTER_NAMES)
    assert any(len(f.facts["monsters"]) >= 3 for f in run.frames)


def test_questions_match_the_truth(run: Run) -> None:
    rng = random.Random(0)
    asked: set[str] = set()
    for frame in run.frames[::7]:
        qas = DoomRecorder().questions(frame, rng)
        assert len(qas) <= 3
        for qa in qas:
            asked.add(qa.question)
            assert qa.kind in ("count", "name") and qa.answers
            if qa.question == "How much health do I have?":
                assert qa.answers == count_answers(frame.hud["health"])
            elif qa.question == "How much ammo is left?":
                assert qa.answers == count_answers(frame.hud["ammo"])
            elif qa.question == "How many enemies can you see?":
                assert frame.scene == "gameplay" and frame.facts["countable"]
                assert qa.answers[0] == str(len(frame.facts["monsters"]))
            elif qa.question == "What killed me?":
                assert frame.scene == "death"
                assert frame.facts["killer"] in qa.answers
            else:
                pytest.fail(qa.question)
    assert {"How much health do I have?", "How many enemies can you see?", "What killed me?"} <= asked


def test_advice_names_the_monsters_in_view(run: Run) -> None:
    rec = DoomRecorder()
    keyed = 0
    for frame in run.frames:
        key = rec.advice(frame)
        if frame.scene == "gameplay" and frame.facts["monsters"]:
            assert key is not None and key.kind == "threat"
            for cls in frame.facts["monsters"]:
                assert monster_names(cls)[0] in key.good
            keyed += 1
        else:
            assert key is None
    assert keyed > len(run.frames) // 2
    imp = rec.advice(TrueFrame(0.0, np.zeros(0, np.uint8), "gameplay", {}, [], {"monsters": ["DoomImp"]}))
    assert imp is not None and {"imp", "serpentipede"} <= set(imp.good)


def test_obituaries_name_the_monster() -> None:
    assert obituary_killer("Player was scorched by a serpentipede.") == "DoomImp"
    assert obituary_killer("Player was eaten by a flesh worm.") == "Demon"
    assert obituary_killer("Player was eaten by a stealth worm.") == "Spectre"
    assert obituary_killer("Player was perforated by a shotgun zombie.") == "ShotgunGuy"
    assert obituary_killer("Player got trilo-bitten.") == "Cacodemon"
    assert obituary_killer("Player stood in awe of the large technospider.") == "SpiderMastermind"
    assert obituary_killer("") is None


def test_leaves_no_files_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    rec = DoomRecorder()
    frames = rec.frames(0, 1.0)
    next(frames)
    assert isinstance(frames, Generator)
    frames.close()  # stopped early: the engine is closed and its scratch files are gone
    assert list(tmp_path.iterdir()) == []


def test_the_status_bar_is_read_at_the_games_own_size() -> None:
    """Freedoom's 320×240 status bar has 11-pixel captions: OCR reads a frame that small at twice its size, so the
    captions are found (read at native size, ARMOR was found on 1 frame in 10 of this run)."""
    pytest.importorskip("rapidocr", reason="install kibitz[vision] for OCR")
    from kibitz.core.config import PerceptionConfig
    from kibitz.perception.labels import read_labelled
    from kibitz.perception.ocr import OCREngine

    engine = OCREngine()
    frames = [f for i, f in enumerate(DoomRecorder().frames(0, 30.0)) if i % 105 == 50]
    assert len(frames) == 10 and frames[0].image.shape[:2] == (240, 320)
    found = right = 0
    for frame in frames:
        boxes = engine.read(frame.image)
        found += any("ARMOR" in b.text for b in boxes)
        read = read_labelled(boxes, PerceptionConfig(layout="shooter").label_specs(), frame.image, engine.recognize)
        right += sum(read.get(name) == value for name, value in frame.hud.items())
    assert found >= 6
    assert right >= 2 * len(frames)  # of 3 numbers a frame (the bench scores this: kibitz bench perception)
