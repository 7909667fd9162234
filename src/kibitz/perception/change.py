"""Cheap per-frame change detection for generic mode (unknown games, videos, web pages).

Each frame becomes a small greyscale thumbnail (about 64 cells wide, aspect kept): every cell averages a
4×4 grid of pixels sampled inside it, so the cost does not depend on the frame size (~0.3 ms for 720p).
From consecutive thumbnails it tells how much the picture moved, whether that was a scene cut, how long the
picture has been still, and whether the frame is near-uniform (a black loading screen, a fade).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from kibitz.core.records import RGBImage

log = logging.getLogger("kibitz.change")

Grey = npt.NDArray[np.float32]

SAMPLES = 4
"""Pixels sampled per thumbnail cell along each axis."""
LUMA = np.array([0.299, 0.587, 0.114], np.float32)
"""Rec. 601 weights of R, G, B in the brightness."""


@dataclass(frozen=True, slots=True)
class ChangeInfo:
    """What changed between this frame and the previous one."""

    t: float
    diff: float
    """Mean absolute difference from the previous frame's thumbnail, 0..1 (0 for the first frame, 1 when
    the frame size changed)."""
    cut: bool
    """A scene cut: the picture changed a lot at once."""
    static_s: float
    """Seconds the picture has been essentially unchanged (0 while it moves)."""
    blank: bool
    """A near-uniform frame (a black loading screen, a fade, an empty page)."""
    burst: bool = False
    """A sudden local change that is not a cut: many more thumbnail cells changed at once than usual (a banner, a
    dialogue box or a pop-up drawn over the play)."""


def _grey(image: RGBImage | npt.NDArray[np.generic]) -> npt.NDArray[np.generic] | None:
    """A 2-D view of the frame's brightness channel(s) without copying, or None when it is not an image."""
    a = np.asarray(image)
    kind_ok = np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating) or a.dtype == np.bool_
    if a.size == 0 or a.ndim not in (2, 3) or not kind_ok:
        return None
    if a.ndim == 3 and a.shape[2] == 2:  # grey + alpha
        return a[:, :, :1]
    return a[:, :, :3] if a.ndim == 3 else a


def samples(image: RGBImage | npt.NDArray[np.generic], width: int = 64) -> Grey | None:
    """The frame's brightness (0..1) at a SAMPLES×SAMPLES grid of pixels per thumbnail cell, shape
    (rows·SAMPLES, cols·SAMPLES); None when the input is not an image."""
    a = _grey(image)
    if a is None:
        return None
    h, w = a.shape[:2]
    tw = max(1, min(width, w))
    th = max(1, min(h, round(h * tw / w), 4 * width))  # a very tall frame still gets a small thumbnail
    ys = ((np.arange(th * SAMPLES) + 0.5) * (h / (th * SAMPLES))).astype(np.intp)
    xs = ((np.arange(tw * SAMPLES) + 0.5) * (w / (tw * SAMPLES))).astype(np.intp)
    sub = a.take(ys, axis=0).take(xs, axis=1)  # only the sampled pixels, whatever the frame size
    if sub.ndim == 2:
        grey = sub.astype(np.float32)
    elif sub.shape[2] == 3:
        grey = sub.astype(np.float32) @ LUMA  # a matrix product is much faster than a mean over 3 channels
    else:
        grey = sub[:, :, 0].astype(np.float32)
    if sub.dtype == np.uint8:
        grey *= 1.0 / 255.0
    elif np.issubdtype(sub.dtype, np.integer):
        grey *= 1.0 / float(np.iinfo(sub.dtype).max)
    else:  # float or bool: 0..1 already, or 0..255 floats
        grey = np.nan_to_num(grey, nan=0.0, posinf=1.0, neginf=0.0)
        if grey.size and float(grey.max()) > 1.0:
            grey *= 1.0 / 255.0
    clipped: Grey = np.clip(grey, 0.0, 1.0, out=grey)
    return clipped


def thumbnail(image: RGBImage, width: int = 64) -> Grey:
    """Greyscale thumbnail about `width` cells wide (aspect kept), values 0..1; 1×1 black for a non-image."""
    grid = samples(image, width)
    if grid is None:
        return np.zeros((1, 1), np.float32)
    rows, cols = grid.shape[0] // SAMPLES, grid.shape[1] // SAMPLES
    cells: Grey = grid.reshape(rows, SAMPLES, cols, SAMPLES).mean(axis=(1, 3), dtype=np.float32)
    return cells


BLANK_STD = 0.02


def is_blank(image: RGBImage, blank_std: float = BLANK_STD) -> bool:
    """A near-uniform picture (a black screen between scenes, a fade): the same test as `ChangeInfo.blank`."""
    grid = samples(image)
    return grid is None or float(grid.std()) < blank_std


class ChangeDetector:
    """Feed it every frame with its time; it remembers the previous thumbnail and the still picture.

    A cut is a frame whose diff is at least `cut_above`, or at least `cut_min` and `cut_ratio` times the
    recent typical diff (so a sudden change in a calm scene counts, steady scrolling does not). The picture
    is still while at most `still_cells` thumbnail cells differ by more than `cell_tol` from the frame that
    started the still stretch: a blinking caret does not end it, a moving sprite or a slow fade does. A frame
    is blank when the brightness of its sampled pixels has a standard deviation below `blank_std`; the first frame
    that is not, after one that is, is a cut (a picture coming out of black is a new scene). A burst is a
    frame, not a cut, in which at least `burst_cells` cells changed by more than `burst_tol` and `burst_ratio` times
    the recent typical count (a banner over the play; chosen on the open set's dev split of Atari games).
    """

    def __init__(
        self,
        cut_above: float = 0.18,
        cut_min: float = 0.08,
        cut_ratio: float = 4.0,
        cell_tol: float = 0.03,
        still_cells: int = 4,
        blank_std: float = BLANK_STD,
        width: int = 64,
        burst_cells: int = 20,
        burst_tol: float = 0.1,
        burst_ratio: float = 4.0,
    ) -> None:
        self.cut_above = cut_above
        self.cut_min = cut_min
        self.cut_ratio = cut_ratio
        self.cell_tol = cell_tol
        self.still_cells = still_cells
        self.blank_std = blank_std
        self.width = width
        self.burst_cells, self.burst_tol, self.burst_ratio = burst_cells, burst_tol, burst_ratio
        self._typical_cells = 0.0
        """A running average of the cells changed in recent ordinary frames."""
        self._prev: Grey | None = None
        self._anchor: Grey | None = None
        """The thumbnail that started the current still stretch."""
        self._still_since: float | None = None
        self._typical = 0.0
        """A running average of recent non-cut diffs."""
        self._compared = 0
        """Frames compared since the last reset or size change (the ratio rule needs a little history)."""
        self._prev_blank = False
        """The previous frame was blank: a picture coming out of a black screen is a new scene (a card of white text
        on black, "GAME OVER" or "WORLD 1-2", differs little from the black before it, yet is one)."""
        self.bad_frames = 0

    def reset(self) -> None:
        """Forget the previous frames (a new source, a seek)."""
        self._prev = self._anchor = None
        self._still_since = None
        self._typical = self._typical_cells = 0.0
        self._compared = 0
        self._prev_blank = False

    def update(self, image: RGBImage, t: float) -> ChangeInfo:
        """Compare the frame shown at time `t` (seconds) with the previous one."""
        grid = samples(image, self.width)
        if grid is None:
            self.bad_frames += 1
            if self.bad_frames in (1, 10, 100, 1000):
                log.info("Change detection skipped a frame that is not an image (%d so far).", self.bad_frames)
            static_s = 0.0 if self._still_since is None else max(0.0, t - self._still_since)
            return ChangeInfo(t=t, diff=0.0, cut=False, static_s=static_s, blank=True)
        rows, cols = grid.shape[0] // SAMPLES, grid.shape[1] // SAMPLES
        thumb: Grey = grid.reshape(rows, SAMPLES, cols, SAMPLES).mean(axis=(1, 3), dtype=np.float32)
        blank = float(grid.std()) < self.blank_std
        prev, self._prev = self._prev, thumb
        was_blank, self._prev_blank = self._prev_blank, blank
        burst = False
        if prev is None:
            diff, cut = 0.0, False
        elif prev.shape != thumb.shape:
            diff, cut = 1.0, True  # the source changed size: treat it as a new scene
            self._typical, self._typical_cells, self._compared = 0.0, 0.0, 0
        elif was_blank and not blank:
            diff, cut = float(np.abs(thumb - prev).mean()), True
        else:
            moved = np.abs(thumb - prev)
            diff = float(moved.mean())
            sudden = self._compared >= 2 and diff >= self.cut_min and diff >= self.cut_ratio * self._typical
            cut = diff >= self.cut_above or sudden
            cells = int(np.count_nonzero(moved > self.burst_tol))
            burst = (
                not cut
                and self._compared >= 2
                and cells >= self.burst_cells
                and cells >= self.burst_ratio * self._typical_cells
            )
            self._compared += 1
            if not cut:
                self._typical = 0.8 * self._typical + 0.2 * diff
            if not cut and not burst:
                self._typical_cells = 0.8 * self._typical_cells + 0.2 * cells
        anchor = self._anchor
        still = (
            anchor is not None
            and anchor.shape == thumb.shape
            and self._still_since is not None
            and t >= self._still_since
            and int(np.count_nonzero(np.abs(thumb - anchor) > self.cell_tol)) <= self.still_cells
        )
        if not still:
            self._anchor, self._still_since = thumb, t
        static_s = 0.0 if self._still_since is None else t - self._still_since
        return ChangeInfo(t=t, diff=diff, cut=cut, static_s=static_s, blank=blank, burst=burst)
