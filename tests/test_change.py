"""Per-frame change detection: diffs, scene cuts, still and blank pictures, odd frames, and its cost."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw

from kibitz.perception.change import ChangeDetector, ChangeInfo, is_blank, thumbnail


def scene(seed: int, h: int = 720, w: int = 1280) -> np.ndarray:
    """A 'game screen': big coloured blocks over a gradient, different for each seed."""
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.uint8)
    img[:] = np.linspace(0, 200, w, dtype=np.uint8)[None, :, None]
    for _ in range(12):
        y, x = rng.integers(0, h - h // 6), rng.integers(0, w - w // 6)
        img[y : y + h // 6, x : x + w // 6] = rng.integers(0, 256, 3)
    return img


def test_identical_frames_are_still_and_static_time_grows() -> None:
    d = ChangeDetector()
    frame = scene(1)
    infos = [d.update(frame.copy(), t) for t in (0.0, 0.5, 1.0, 2.5)]
    assert [i.diff for i in infos] == [0.0, 0.0, 0.0, 0.0]
    assert not any(i.cut or i.blank for i in infos)
    assert [i.static_s for i in infos] == pytest.approx([0.0, 0.5, 1.0, 2.5])
    assert infos[-1].t == 2.5 and isinstance(infos[-1], ChangeInfo)


def test_small_motion_resets_still_time_but_is_not_a_cut() -> None:
    d = ChangeDetector()
    frame = scene(2)
    for t in (0.0, 1.0, 2.0):
        d.update(frame, t)
    moved = frame.copy()
    moved[300:400, 600:700] = 255 - moved[300:400, 600:700]  # a sprite-sized change
    info = d.update(moved, 3.0)
    assert 0.0 < info.diff < 0.08
    assert not info.cut and info.static_s == 0.0
    assert d.update(moved, 4.0).static_s == pytest.approx(1.0)
    caret = moved.copy()
    caret[500:520, 200:202] = 0  # a blinking text caret does not end the still stretch
    assert d.update(caret, 5.0).static_s == pytest.approx(2.0)
    faded = moved // 2 + 10
    assert d.update(faded, 6.0).static_s == 0.0


def test_scene_cut_is_detected() -> None:
    d = ChangeDetector()
    for i in range(5):
        assert not d.update(scene(3), i / 10).cut
    info = d.update(scene(4), 0.5)
    assert info.cut and info.diff > 0.08 and info.static_s == 0.0
    assert not d.update(scene(4), 0.6).cut  # the new scene, held, is not another cut


def test_sudden_change_in_a_calm_scene_is_a_cut_but_steady_scrolling_is_not() -> None:
    base = scene(5, 360, 640)
    d = ChangeDetector()
    infos = [d.update(np.roll(base, 12 * i, axis=1), i / 30) for i in range(20)]  # steady scrolling
    assert max(i.diff for i in infos) > 0.01 and not any(i.cut for i in infos)
    calm = ChangeDetector()
    for i in range(10):
        calm.update(base, i / 30)
    half = base.copy()
    half[:, :320] = 255 - half[:, :320]  # half the screen flips at once (a menu opening)
    info = calm.update(half, 10 / 30)
    assert calm.cut_min <= info.diff and info.cut


def test_a_banner_over_moving_play_is_a_burst_not_a_cut() -> None:
    base = scene(7, 360, 640)
    d = ChangeDetector()
    # A sprite moving over a still background: a few cells change every frame, never a burst.
    frames = []
    for i in range(30):
        f = base.copy()
        f[100:130, 20 + 8 * i : 50 + 8 * i] = 255
        frames.append(f)
    infos = [d.update(f, i / 30) for i, f in enumerate(frames)]
    assert not any(i.burst or i.cut for i in infos)
    banner = frames[-1].copy()
    banner[150:230, 160:480] = 0  # a black box with the banner's text on it
    banner[180:200, 200:440] = 255
    info = d.update(banner, 1.0)
    assert info.burst and not info.cut
    assert not d.update(banner, 1.03).burst  # the banner staying up is no new burst


def test_blank_frames() -> None:
    d = ChangeDetector()
    assert d.update(np.zeros((720, 1280, 3), np.uint8), 0.0).blank  # a black loading screen
    assert d.update(np.full((720, 1280, 3), 128, np.uint8), 0.1).blank  # a grey fade
    noisy_black = np.random.default_rng(0).integers(0, 3, (720, 1280, 3), dtype=np.uint8)
    assert d.update(noisy_black, 0.2).blank  # video noise on black is still blank
    assert not d.update(scene(6), 0.3).blank
    page = Image.new("RGB", (1280, 720), "white")
    draw = ImageDraw.Draw(page)
    for y in range(40, 700, 40):  # a page of small text
        draw.text((40, y), "The quick brown fox jumps over the lazy dog. 0123456789", fill="black")
    assert not d.update(np.asarray(page), 0.4).blank
    one_line = Image.new("RGB", (1280, 720), "black")
    ImageDraw.Draw(one_line).text((600, 350), "Loading...", fill="white")
    assert d.update(np.asarray(one_line), 0.5).blank  # a loading screen with a word on it is near-uniform


@pytest.mark.parametrize(
    "frame",
    [
        np.zeros((0, 0, 3), np.uint8),
        np.zeros((1, 1, 3), np.uint8),
        np.zeros((3, 5), np.uint8),
        np.zeros((10, 10, 1), np.uint8),
        np.zeros((10, 10, 2), np.uint16),
        np.zeros((10, 10, 4), np.uint8),
        np.ones((10, 10, 3), bool),
        np.full((20, 20, 3), np.nan, np.float32),
        np.random.default_rng(0).random((20, 30, 3)),
        np.zeros((4, 4, 3, 2), np.uint8),
        np.array([["not", "pixels"]]),
        None,
    ],
    ids=["empty", "1px", "tiny-grey", "1ch", "grey-alpha-16bit", "rgba", "bool", "nan", "float", "4d", "str", "none"],
)
def test_bad_frames_do_not_crash(frame: np.ndarray) -> None:
    d = ChangeDetector()
    d.update(scene(7, 90, 160), 0.0)
    info = d.update(frame, 1.0)
    assert 0.0 <= info.diff <= 1.0 and info.static_s >= 0.0
    assert d.update(scene(7, 90, 160), 2.0).diff >= 0.0  # and it keeps working afterwards


def test_size_change_and_unusual_sizes() -> None:
    d = ChangeDetector()
    d.update(scene(8), 0.0)
    info = d.update(scene(8, 210, 160), 0.1)  # the source changed resolution
    assert info.cut and info.diff == 1.0
    tall = thumbnail(np.zeros((5000, 10, 3), np.uint8))
    wide = thumbnail(np.zeros((10, 5000, 3), np.uint8))
    assert tall.shape == (256, 10)
    assert wide.shape == (1, 64)
    assert thumbnail(scene(9)).shape == (36, 64)
    huge = np.zeros((8000, 12000, 3), np.uint8)
    huge[:4000] = 255
    assert not d.update(huge, 0.2).blank


def test_time_going_backwards_restarts_the_still_time() -> None:
    d = ChangeDetector()
    frame = scene(10)
    d.update(frame, 5.0)
    assert d.update(frame, 6.0).static_s == pytest.approx(1.0)
    assert d.update(frame, 1.0).static_s == 0.0  # a video that looped or was seeked
    d.reset()
    assert d.update(frame, 2.0).diff == 0.0


def test_cost_per_720p_frame_is_well_under_5_ms() -> None:
    d = ChangeDetector()
    frames = [scene(11), scene(12)]
    times = []
    for i in range(60):
        t0 = time.perf_counter()
        d.update(frames[i % 2], i / 30)
        times.append(time.perf_counter() - t0)
    assert float(np.median(times)) < 0.005 / 2


def test_is_blank_agrees_with_the_detector() -> None:
    page = Image.new("RGB", (1280, 720), "black")
    ImageDraw.Draw(page).text((600, 350), "Loading...", fill="white")
    frames: list[Any] = [np.zeros((240, 256, 3), np.uint8), np.asarray(page), scene(13), scene(14, 240, 256), None]
    d = ChangeDetector()
    assert [is_blank(f) for f in frames] == [d.update(f, i).blank for i, f in enumerate(frames)]
    assert [is_blank(f) for f in frames] == [True, True, False, False, True]


def test_a_picture_coming_out_of_black_is_a_cut() -> None:
    """A card of white text on black ("GAME OVER") differs little from the black screen before it, yet is a new
    scene: the first frame that is not blank after a blank one is a cut (and staying on it is not)."""
    d = ChangeDetector()
    black = np.zeros((240, 256, 3), np.uint8)
    card = black.copy()
    card[110:126, 80:176] = 255  # one line of text
    infos = [d.update(f, i * 0.1) for i, f in enumerate([black, black, black, card, card, black, card])]
    assert [i.blank for i in infos] == [True, True, True, False, False, True, False]
    assert [i.cut for i in infos] == [False, False, False, True, False, False, True]
