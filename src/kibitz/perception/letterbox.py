"""Where the game is in a capture: the part of the frame between dark bars, found over time.

A player's capture is rarely the game's own picture: a 4:3 game in a 16:9 capture has black bars either side, a
letterboxed film or a window on a dark desktop has dark around it. Recognition compares the frame with the games'
examples (learnt from their own pictures), so the bars make it look like no game at all (SMB pillarboxed in 16:9:
followed on 9 % of its frames instead of 99.6 %, Breakout on none; dev seed). A bar stays dark; the game lights its
rows and columns up now and then. So the game's box is the span of rows and of columns with a pixel brighter than
`dark` in the last `window_s` seconds, and recognition looks at that box. One picture never decides it: a black card
of the game itself ("WORLD 1-1") is not a bar, because the rows and columns the play lit up a moment ago still
count. Bars come in pairs (a capture centres the picture), a game's own dark margin is on one side (Breakout's black
below the paddle): so a direction is cut only when both of its ends are dark, each by at least `min_bar` of it, and
by the smaller of the two from each end (the game keeps its own margin, which its examples have too). A bright or busy
desktop around a window is not found (a known limit).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from kibitz.core.records import RGBImage

Box = tuple[int, int, int, int]
"""y0, y1, x0, x1 in the frame's pixels (exclusive ends)."""


@dataclass
class ContentBox:
    step: int = 4
    """Every `step`-th pixel is looked at (a 720p frame: a 320×180 grid)."""
    dark: int = 24
    """A sampled pixel is lit when its brightest channel is above this."""
    window_s: float = 10.0
    """A row or column is part of the game while a pixel of it was lit within this many seconds."""
    min_share: float = 0.25
    """A box narrower or shorter than this share of the frame is not trusted (a dark scene with one lit sprite)."""
    min_bar: float = 0.05
    """A direction is cut only when both its ends are dark for at least this share of it."""
    _rows: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0), init=False, repr=False)
    _cols: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0), init=False, repr=False)
    _shape: tuple[int, int] = field(default=(0, 0), init=False, repr=False)

    def update(self, image: RGBImage, t: float) -> Box | None:
        """Take the frame shown at `t`; the game's box in it, or None for the whole frame."""
        h, w = image.shape[:2]
        lit = np.asarray(image[:: self.step, :: self.step]).max(axis=2) > self.dark
        if (h, w) != self._shape or len(self._rows) != lit.shape[0] or len(self._cols) != lit.shape[1]:
            self._shape = (h, w)
            self._rows = np.full(lit.shape[0], -np.inf)
            self._cols = np.full(lit.shape[1], -np.inf)
        self._rows[lit.any(axis=1)] = t
        self._cols[lit.any(axis=0)] = t
        return self.box(t)

    def box(self, t: float) -> Box | None:
        """The span of the rows and of the columns lit within `window_s` of `t` (None: the whole frame)."""
        h, w = self._shape
        rows = np.flatnonzero(self._rows >= t - self.window_s)
        cols = np.flatnonzero(self._cols >= t - self.window_s)
        if not len(rows) or not len(cols):
            return None
        y0, y1 = int(rows[0]) * self.step, min(h, (int(rows[-1]) + 1) * self.step)
        x0, x1 = int(cols[0]) * self.step, min(w, (int(cols[-1]) + 1) * self.step)
        if (y1 - y0) / h < self.min_share or (x1 - x0) / w < self.min_share:
            return None
        y0, y1 = self._bars(y0, y1, h)
        x0, x1 = self._bars(x0, x1, w)
        return None if (y0, y1, x0, x1) == (0, h, 0, w) else (y0, y1, x0, x1)

    def _bars(self, start: int, end: int, size: int) -> tuple[int, int]:
        """The span kept in one direction: the same bar cut from both ends, or nothing cut."""
        bar = min(start, size - end)
        return (bar, size - bar) if bar >= self.min_bar * size else (0, size)


def crop(image: RGBImage, box: Box | None) -> RGBImage:
    """The part of `image` inside `box` (all of it for None)."""
    if box is None:
        return image
    y0, y1, x0, x1 = box
    return image[y0:y1, x0:x1]
