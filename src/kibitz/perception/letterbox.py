"""Black bars around the game picture: a 4:3 game in a 16:9 window, a video with letterbox bars, a capture region a
little larger than the game. Everything after (recognition, HUD boxes, OCR) wants the picture itself.

`bars(image)` measures the near-black margins of one frame; a margin counts only when its opposite margin is about
as wide (bars are centred: a dark level's black edge on one side is not a bar). One frame can mislead (a dark scene
makes its edges look like bars, and so does a game's own black card with centred text), so `BarTrimmer` keeps, over
the last `window_s` seconds (10), the *narrowest* bars seen (the box that holds every picture shown): bars shrink at
once when content reaches into them and widen only once a whole window has shown them wider, so a card of a few
seconds between levels is never cut. A frame of another size starts again. Cheap: row and column maxima on a
strided copy, then a few full-resolution lines at each bar's edge.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kibitz.core.records import RGBImage

DARK = 24
"""A pixel this dark or darker (every channel, 0..255) may be a bar."""
MIN_SHARE = 0.03
"""A bar narrower than this share of the frame's side is no bar (a border line, a game's own dark edge)."""
SYMMETRY = 0.02
"""Opposite bars may differ by this share of the side (plus a pixel): centring rounds."""


@dataclass(frozen=True, slots=True)
class Box:
    x0: int
    y0: int
    x1: int
    y1: int

    def crop(self, image: RGBImage) -> RGBImage:
        return image[self.y0 : self.y1, self.x0 : self.x1]


def _margin(dark: np.ndarray) -> tuple[int, int]:
    """How many leading and trailing entries of a 1-D "all dark" mask are True."""
    n = len(dark)
    if dark.all():
        return n, 0
    lead = int(np.argmin(dark))
    trail = int(np.argmin(dark[::-1]))
    return lead, trail


def _pair(lead: int, trail: int, side: int) -> tuple[int, int]:
    """The bars on one axis if they are bars (wide enough, about as wide as each other), else none."""
    lo, hi = min(lead, trail), max(lead, trail)
    if lo < MIN_SHARE * side or hi - lo > SYMMETRY * side + 1:
        return 0, 0
    return lead, trail


def _refine(image: RGBImage, coarse: int, step: int, axis: int, from_end: bool) -> int:
    """The exact width of a bar found on a strided copy: full-resolution lines near its edge."""
    if coarse == 0:
        return 0
    n = image.shape[axis]
    lo, hi = max(0, coarse - step), min(n, coarse + step)
    width = lo
    for k in range(lo, hi):
        index = n - 1 - k if from_end else k
        line = image[index] if axis == 0 else image[:, index]
        if int(line.max()) > DARK:
            break
        width = k + 1
    return width


def bars(image: RGBImage) -> Box:
    """The picture inside this frame's centred black bars (the whole frame when it has none)."""
    h, w = image.shape[:2]
    step = max(1, min(h, w) // 180)  # a strided look finds a bar's edge to within `step`; refined after
    small = image[::step, ::step]
    # The brightest channel, pairwise: ~20× faster than a max over the channel axis of a strided view.
    level = np.maximum(np.maximum(small[..., 0], small[..., 1]), small[..., 2]) if small.ndim == 3 else small
    dark = level <= DARK
    top, bottom = _margin(np.asarray(dark.all(axis=1)))
    left, right = _margin(np.asarray(dark.all(axis=0)))
    if top + bottom >= dark.shape[0] or left + right >= dark.shape[1]:
        return Box(0, 0, w, h)  # all dark: a black screen, not bars
    top, bottom = _pair(top * step, bottom * step, h)
    left, right = _pair(left * step, right * step, w)
    top, bottom = _refine(image, top, step, 0, False), _refine(image, bottom, step, 0, True)
    left, right = _refine(image, left, step, 1, False), _refine(image, right, step, 1, True)
    return Box(left, top, w - right, h - bottom)


class BarTrimmer:
    """The picture inside the bars, steady over time (see the module's notes)."""

    def __init__(self, window_s: float = 10.0) -> None:
        self.window_s = window_s
        self._seen: dict[Box, float] = {}
        """Each box found in the last `window_s` seconds, and when it was last found (few: bars rarely move)."""
        self._shape: tuple[int, ...] | None = None
        self.box: Box | None = None

    def update(self, image: RGBImage, t: float) -> Box:
        """This frame's box: the union of the boxes seen in the last `window_s` seconds."""
        if image.shape != self._shape:
            self._seen.clear()
            self._shape = image.shape
        self._seen[bars(image)] = t
        if len(self._seen) > 1:
            self._seen = {b: at for b, at in self._seen.items() if 0 <= t - at <= self.window_s}
        boxes = self._seen.keys()
        self.box = Box(
            min(b.x0 for b in boxes), min(b.y0 for b in boxes), max(b.x1 for b in boxes), max(b.y1 for b in boxes)
        )
        return self.box

    def trim(self, image: RGBImage, t: float) -> RGBImage:
        """The frame cut to its picture (the frame itself, not a copy, when there are no bars)."""
        box = self.update(image, t)
        h, w = image.shape[:2]
        return image if (box.x0, box.y0, box.x1, box.y1) == (0, 0, w, h) else box.crop(image)
