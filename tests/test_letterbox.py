"""Where the game is in a capture: bars found over time, in pairs, never from one picture; and what live recognition
makes of a pillarboxed game."""

from __future__ import annotations

import numpy as np

from kibitz.perception.letterbox import ContentBox, crop

RNG = np.random.default_rng(0)


def game(h: int = 240, w: int = 320) -> np.ndarray:
    return RNG.integers(40, 255, (h, w, 3), dtype=np.uint8)


def pillarbox(picture: np.ndarray, width: int = 428) -> np.ndarray:
    h, w = picture.shape[:2]
    out = np.zeros((h, width, 3), np.uint8)
    x = (width - w) // 2
    out[:, x : x + w] = picture
    return out


def test_pillarbox_bars_are_cut_and_the_game_kept() -> None:
    boxes = ContentBox()
    first = boxes.update(pillarbox(game()), 0.0)
    box = boxes.update(pillarbox(game()), 0.5)
    assert first is None  # one look: nothing has moved yet, so nothing tells bars from the game's own black
    assert box == (0, 240, 54, 374)  # 54 pixels of bar each side, to the pixel
    assert crop(pillarbox(game()), box).shape == (240, 320, 3)


def test_a_still_picture_is_never_cut() -> None:
    """A screenshot held on screen (or SMB's "GAME OVER" card shown alone): its dark surround may be the game's own."""
    boxes, still = ContentBox(), pillarbox(game())
    assert all(boxes.update(still, i * 0.5) is None for i in range(30))
    assert boxes.update(pillarbox(game()), 15.0) == (0, 240, 54, 374)  # it moves: the bars are bars


def test_a_black_card_of_the_game_is_not_a_bar() -> None:
    boxes = ContentBox()
    for i in range(4):
        boxes.update(pillarbox(game()), i * 0.5)
    card = np.zeros((240, 320, 3), np.uint8)
    card[110:126, 120:200] = 255  # "WORLD 1-1" in the middle of black
    assert boxes.update(pillarbox(card), 2.0) == (0, 240, 54, 374)  # the play lit the rest a moment ago
    for i in range(30):  # the card stays longer than the window: then its own lines are all that is lit
        last = boxes.update(pillarbox(card), 2.5 + i * 0.5)
    assert last is None or last[3] - last[2] >= 80


def test_a_games_own_dark_margin_is_kept() -> None:
    boxes = ContentBox()
    picture = game()
    picture[200:] = 0  # black below the paddle, on one side only: the game's own look
    assert boxes.update(picture, 0.0) is None and boxes.update(game(), 0.5) is None
    moved = picture.copy()
    moved[:200] = game()[:200]
    assert boxes.update(pillarbox(picture), 1.0) is None  # a new size: looked at afresh
    assert boxes.update(pillarbox(moved), 1.5) == (0, 240, 54, 374)  # the pair of bars, not the margin


def test_nothing_lit_or_nothing_to_cut_is_the_whole_frame() -> None:
    boxes = ContentBox()
    assert boxes.update(np.zeros((240, 320, 3), np.uint8), 0.0) is None
    assert boxes.update(game(), 0.5) is None
    sprite = np.zeros((720, 1280, 3), np.uint8)
    sprite[300:340, 600:640] = 200  # one lit sprite in a dark scene: not trusted as the game's box
    assert ContentBox().update(sprite, 0.0) is None


def test_a_window_on_a_dark_desktop_is_cut_to_the_pixel_though_its_own_edges_are_black() -> None:
    """The game's own black rows at its top and bottom are not the grey desktop's: cutting them too (3 native rows)
    made River Raid 0.90 like itself, under its acceptance."""
    picture = game()
    picture[:6], picture[-20:] = 0, 0
    desktop = np.full((720, 1280, 3), (14, 17, 24), np.uint8)
    boxes = ContentBox()
    desktop[240:480, 480:800] = picture
    boxes.update(desktop, 0.0)
    desktop[246:460, 480:800] = game()[6:220]  # the play moves on, its black edges stay
    assert boxes.update(desktop, 0.5) == (240, 480, 480, 800)


def test_the_letterbox_bench_watches_each_framing() -> None:
    """`kibitz bench perception --parts letterbox` on two games for a few seconds: each framing watched by the real
    perceiver, the HUD scored where the game has a HUD file (Freeway has none)."""
    import pytest

    pytest.importorskip("torch", reason="install kibitz[vision] for the EfficientNet embedder")
    from kibitz.bench.perception import FRAMINGS, framed, letterbox_bench
    from kibitz.perception.classifier import EMBEDDERS

    small = game(210, 160)
    assert framed(small, FRAMINGS[0]) is small
    assert framed(small, FRAMINGS[1]).shape == framed(small, FRAMINGS[2]).shape == (720, 1280, 3)
    found = letterbox_bench(EMBEDDERS.get("efficientnet-lite0")(), ("breakout", "freeway"), seconds=6.0, seed=3)
    assert set(found) == {(g, f) for g in ("breakout", "freeway") for f in FRAMINGS}
    for (g, _), (frames, followed, scene, shown, exact) in found.items():
        assert frames > 10 and 0 <= followed <= frames and 0 <= scene <= frames and 0 <= exact <= shown
        assert (shown > 0) == (g == "breakout")
    assert found[("breakout", FRAMINGS[1])][1] > 0  # pillarboxed, and still followed


def test_the_hud_reads_the_box_only_when_it_is_shaped_like_the_game() -> None:
    """A capture of the game's own picture keeps its dark margins (they look like bars: Asteroids' black rows); a
    pillarboxed capture loses its bars."""
    from kibitz.perception.letterbox import shaped_like

    native = game(210, 160)
    assert shaped_like(native, (20, 190, 0, 160), (160, 210)) is native
    capture = np.zeros((720, 1280, 3), np.uint8)
    assert shaped_like(capture, (0, 720, 365, 914), (160, 210)).shape == (720, 549, 3)
    assert shaped_like(capture, None, (160, 210)) is capture
