"""Black bars around the game picture are found, kept steady, and cut away before perception."""

from __future__ import annotations

import numpy as np

from kibitz.perception.letterbox import BarTrimmer, Box, bars


def boxed(picture: np.ndarray, size: tuple[int, int] = (1280, 720)) -> tuple[np.ndarray, Box]:
    w, h = size
    ph, pw = picture.shape[:2]
    out = np.zeros((h, w, 3), np.uint8)
    x, y = (w - pw) // 2, (h - ph) // 2
    out[y : y + ph, x : x + pw] = picture
    return out, Box(x, y, x + pw, y + ph)


def content(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(40, 255, (h, w, 3), dtype=np.uint8)


def test_centred_bars_are_found_to_the_pixel() -> None:
    for ph, pw in ((720, 960), (540, 1280), (601, 803)):  # pillarbox, letterbox, both with odd sizes
        frame, truth = boxed(content(ph, pw))
        assert bars(frame) == truth
    whole = content(720, 1280)
    assert bars(whole) == Box(0, 0, 1280, 720)
    assert bars(np.zeros((720, 1280, 3), np.uint8)) == Box(0, 0, 1280, 720)  # a black screen is not bars
    # A dark level whose black reaches one edge only: no bars.
    dark_left = content(720, 1280)
    dark_left[:, :300] = 0
    assert bars(dark_left) == Box(0, 0, 1280, 720)
    # A thin dark border line is no bar either.
    lined = content(720, 1280)
    lined[:, :8] = lined[:, -8:] = 0
    assert bars(lined) == Box(0, 0, 1280, 720)


def test_the_trimmer_keeps_a_short_black_card_whole_and_resets_on_a_new_size() -> None:
    trimmer = BarTrimmer(window_s=10.0)
    play = content(240, 256)
    card = np.zeros((240, 256, 3), np.uint8)
    card[100:140, 60:196] = 255  # "WORLD 1-1" in the middle of a black card: its dark sides look like bars
    assert bars(card) != Box(0, 0, 256, 240)
    for i in range(100):
        assert trimmer.trim(play, i / 10).shape == play.shape
    for i in range(30):  # three seconds of card: never cut, the play's box still stands
        assert trimmer.trim(card, 10 + i / 10).shape == card.shape
    # A letterboxed capture of another size: cut from its first frame.
    frame, truth = boxed(content(720, 960, 1))
    assert trimmer.update(frame, 14.0) == truth
    assert trimmer.trim(frame, 14.1).shape == (720, 960, 3)
    # Content reaching into the bars widens the box at once.
    wide = content(720, 1280, 2)
    assert trimmer.update(wide, 14.2) == Box(0, 0, 1280, 720)
