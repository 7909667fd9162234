"""Cheap per-frame change detection: how much the picture moved, scene cuts, still and blank screens.

Works on a small greyscale thumbnail (area averages over a ~64-pixel-wide grid), so it costs well under a
millisecond even on a 720p frame; it is what generic mode runs on every frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from kibitz.core.records import RGBImage


@dataclass(frozen=True, slots=True)
class ChangeInfo:
    t: float
    diff: float
    """Mean absolute difference from the previous frame's thumbnail, 0..1."""
    cut: bool
    """A scene cut: the picture changed a lot at once."""
    static_s: float
    """How long the picture has been essentially unchanged."""
    blank: bool
    """A near-uniform frame (a black loading screen, a fade)."""


def thumbnail(image: RGBImage, width: int = 64) -> npt.NDArray[np.float32]:
    """Greyscale thumbnail about `width` cells wide, values 0..1: each cell averages a sparse grid of its pixels."""
    a = np.asarray(image)
    h, w = a.shape[:2]
    tw = max(1, min(width, w))
    th = max(1, min(h, round(h * tw / max(w, 1))))
    step_y, step_x = max(1, h // (th * 4)), max(1, w // (tw * 4))
    sub = a[::step_y, ::step_x].astype(np.float32)  # subsample first: a 720p frame becomes ~256×144
    if sub.ndim == 3:
        sub = sub[:, :, :3].mean(axis=2)
    ys = np.linspace(0, sub.shape[0], th + 1).astype(int)[:-1]
    xs = np.linspace(0, sub.shape[1], tw + 1).astype(int)[:-1]
    rows = np.add.reduceat(sub, ys, axis=0) / np.diff(np.append(ys, sub.shape[0]))[:, None]
    cells = np.add.reduceat(rows, xs, axis=1) / np.diff(np.append(xs, sub.shape[1]))[None, :]
    return (cells / 255.0).astype(np.float32)


class ChangeDetector:
    def __init__(self, cut_above: float = 0.18, still_below: float = 0.004, blank_std: float = 0.02) -> None:
        self.cut_above = cut_above
        self.still_below = still_below
        self.blank_std = blank_std
        self._prev: npt.NDArray[np.float32] | None = None
        self._still_since: float | None = None

    def update(self, image: RGBImage, t: float) -> ChangeInfo:
        thumb = thumbnail(image)
        prev, self._prev = self._prev, thumb
        diff = 1.0 if prev is None or prev.shape != thumb.shape else float(np.abs(thumb - prev).mean())
        if diff < self.still_below:
            self._still_since = t if self._still_since is None else self._still_since
        else:
            self._still_since = None
        static_s = 0.0 if self._still_since is None else t - self._still_since
        cut = prev is not None and diff > self.cut_above
        return ChangeInfo(t=t, diff=diff, cut=cut, static_s=static_s, blank=float(thumb.std()) < self.blank_std)
