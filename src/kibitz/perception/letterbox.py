"""Where the game is in a capture: the part of the frame between dark bars, found over time.

A player's capture is rarely the game's own picture: a 4:3 game in a 16:9 capture has black bars either side, a
letterboxed film or a window on a dark desktop has dark around it. Recognition compares the frame with the games'
examples (learnt from their own pictures), so the bars make it look like no game at all (SMB pillarboxed in 16:9:
followed on 9 % of its frames instead of 99.6 %, Breakout on none; dev seed). A bar stays dark; the game lights its
rows and columns up now and then. So the game's box is the span of rows and of columns with a pixel unlike the bars'
colour (dark, taken at the frame's corners) in the last `window_s` seconds, and recognition looks at that box, to the
pixel. One picture never decides it: a black card of the game itself ("WORLD 1-1") is not a bar, because the rows and
columns the play lit up a moment ago still count. Bars come in pairs (a capture centres the picture), a game's own dark
margin is on one side (Breakout's black below the paddle): so a direction is cut only when both of its ends are dark,
each by at least `min_bar` of it, and by the smaller of the two from each end (the game keeps its own margin, which its
examples have too). A bright or busy desktop around a window is not found (a known limit).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from kibitz.core.records import RGBImage

Box = tuple[int, int, int, int]
"""y0, y1, x0, x1 in the frame's pixels (exclusive ends)."""


@dataclass
class ContentBox:
    step: int = 4
    """Every `step`-th pixel along a row or a column is looked at; every row and every column is, so a bar ends on the
    exact pixel where the game starts (recognition is that sensitive: River Raid cut by 3 of its own 210 rows was 0.90
    like itself, and no longer itself)."""
    dark: int = 24
    """A bar is of one dark colour, no channel above this (black, a dark desktop); the colour is the corners'."""
    tolerance: int = 12
    """A pixel is the bar's while no channel of it is further than this from the bar's colour (a game's own black
    margin inside a window on a dark grey desktop is not the desktop)."""
    window_s: float = 10.0
    """A row or column is part of the game while a pixel of it was lit within this many seconds."""
    min_share: float = 0.2
    """A box narrower or shorter than this share of the frame is not trusted (a dark scene with one lit sprite). An
    Atari game at twice its size in a 720p capture lights 23.75 % of its width (its first 8 columns stay black): 0.25
    missed it (`kibitz bench perception --parts letterbox --seed 2`, the dev seed)."""
    min_bar: float = 0.05
    """A direction is cut only when both its ends are dark for at least this share of it."""
    _rows: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0), init=False, repr=False)
    _cols: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0), init=False, repr=False)
    _shape: tuple[int, int] = field(default=(0, 0), init=False, repr=False)
    _seen: npt.NDArray[np.uint8] | None = field(default=None, init=False, repr=False)
    _moved_at: float = field(default=-np.inf, init=False, repr=False)
    """Bars are believed only while the picture moves (a looked-at pixel changed from one look to the next within
    `window_s`; Breakout's ball is a handful of them): a still picture (a screenshot held on screen, SMB's "GAME OVER"
    card shown alone) may be a black card of the game itself, whose dark surround no time has told from bars yet."""

    def update(self, image: RGBImage, t: float) -> Box | None:
        """Take the frame shown at `t`; the game's box in it, or None for the whole frame."""
        h, w = image.shape[:2]
        if (h, w) != self._shape:
            self._shape = (h, w)
            self._rows, self._cols = np.full(h, -np.inf), np.full(w, -np.inf)
            self._seen, self._moved_at = None, -np.inf
        picture = np.asarray(image)[:, :, :3]
        look = picture[:: self.step, :: self.step].copy()
        if self._seen is not None and int(np.max(_absdiff(look, self._seen))) > self.tolerance:
            self._moved_at = t
        self._seen = look
        corners = picture[[0, 0, -1, -1], [0, -1, 0, -1]].astype(np.int16)
        colour = np.median(corners, axis=0)
        if colour.max() > self.dark:  # no dark bars around this frame: all of it is the game's
            self._rows[:], self._cols[:] = t, t
        else:
            self._rows[self._lit(picture[:, :: self.step], colour).any(axis=1)] = t
            self._cols[self._lit(picture[:: self.step], colour).any(axis=0)] = t
        return self.box(t)

    def _lit(self, pixels: npt.NDArray[np.uint8], colour: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
        """Which pixels are not the bar's colour (a channel further than `tolerance` from it)."""
        low = np.clip(colour - self.tolerance, 0, 255)
        high = np.clip(colour + self.tolerance, 0, 255)
        import cv2  # OpenCV comes with the vision extra (rapidocr); its SIMD range test is ~10× numpy's here

        return np.asarray(cv2.inRange(np.ascontiguousarray(pixels), low, high) == 0)

    def box(self, t: float) -> Box | None:
        """The span of the rows and of the columns lit within `window_s` of `t` (None: the whole frame)."""
        h, w = self._shape
        if self._moved_at < t - self.window_s:
            return None  # a still picture: its dark surround may be the game's own
        rows = np.flatnonzero(self._rows >= t - self.window_s)
        cols = np.flatnonzero(self._cols >= t - self.window_s)
        if not len(rows) or not len(cols):
            return None
        y0, y1 = int(rows[0]), int(rows[-1]) + 1
        x0, x1 = int(cols[0]), int(cols[-1]) + 1
        if (y1 - y0) / h < self.min_share or (x1 - x0) / w < self.min_share:
            return None
        y0, y1 = self._bars(y0, y1, h)
        x0, x1 = self._bars(x0, x1, w)
        return None if (y0, y1, x0, x1) == (0, h, 0, w) else (y0, y1, x0, x1)

    def _bars(self, start: int, end: int, size: int) -> tuple[int, int]:
        """The span kept in one direction: the same bar cut from both ends, or nothing cut."""
        bar = min(start, size - end)
        return (bar, size - bar) if bar >= self.min_bar * size else (0, size)


def _absdiff(a: npt.NDArray[np.uint8], b: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    import cv2

    return np.asarray(cv2.absdiff(a, b))


def crop(image: RGBImage, box: Box | None) -> RGBImage:
    """The part of `image` inside `box` (all of it for None)."""
    if box is None:
        return image
    y0, y1, x0, x1 = box
    return image[y0:y1, x0:x1]


def shaped_like(image: RGBImage, box: Box | None, size: tuple[int, int]) -> RGBImage:
    """The part of `image` inside `box` or all of it, whichever is shaped more like a game's native frame of `size`
    (width, height): a capture of the game's own picture keeps its dark margins (Asteroids' black rows look like bars,
    and read cut its HUD 30 % right instead of 97 %), a pillarboxed one loses its bars."""
    if box is None:
        return image
    y0, y1, x0, x1 = box
    target = np.log(size[0] / size[1])
    whole = abs(np.log(image.shape[1] / image.shape[0]) - target)
    return crop(image, box) if abs(np.log((x1 - x0) / (y1 - y0)) - target) < whole else image
