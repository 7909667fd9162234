"""The screen, captured with mss: a whole monitor, a region, or a window found by title (xdotool)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from kibitz.core.config import SourceConfig
from kibitz.core.errors import SourceError
from kibitz.core.records import Frame
from kibitz.games.base import GameAdapter
from kibitz.sources.base import FrameSource, Pacer


def window_region(title: str) -> tuple[int, int, int, int]:
    """Left, top, width, height of the first visible window whose title contains `title` (X11, xdotool)."""
    if shutil.which("xdotool") is None:
        raise SourceError("Capturing a window by title needs xdotool: apt-get install xdotool (or pass --region).")
    found = subprocess.run(["xdotool", "search", "--onlyvisible", "--name", title], capture_output=True, text=True)
    ids = found.stdout.split()
    if not ids:
        raise SourceError(f"No visible window has {title!r} in its title; check the game is running.")
    geo = subprocess.run(["xdotool", "getwindowgeometry", "--shell", ids[0]], capture_output=True, text=True)
    values = dict(line.split("=", 1) for line in geo.stdout.splitlines() if "=" in line)
    return int(values["X"]), int(values["Y"]), int(values["WIDTH"]), int(values["HEIGHT"])


class ScreenSource(FrameSource):
    name = "screen"

    def __init__(
        self,
        fps: float = 10.0,
        region: tuple[int, int, int, int] | None = None,
        monitor: int = 1,
        window: str | None = None,
    ) -> None:
        if sys.platform.startswith("linux") and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
            raise SourceError(
                "No display to capture (DISPLAY is not set); run kibitz inside your desktop session "
                "or under Xvfb, or use --source emulator."
            )
        try:
            import mss
        except ImportError:
            raise SourceError("Screen capture needs mss: pip install 'kibitz[capture]'.") from None
        try:
            factory = getattr(mss, "MSS", None) or mss.mss  # mss 10 renamed the class
            self.sct: Any = factory()
        except Exception as exc:  # mss raises its own ScreenShotError and platform errors
            raise SourceError(f"Cannot open the display for capture ({exc}); check DISPLAY or permissions.") from None
        if window is not None:
            region = window_region(window)
        if region is not None:
            left, top, width, height = region
            self.area: dict[str, int] = {"left": left, "top": top, "width": width, "height": height}
        else:
            monitors = self.sct.monitors
            if monitor >= len(monitors):
                raise SourceError(f"Monitor {monitor} does not exist; this display has {len(monitors) - 1}.")
            self.area = dict(monitors[monitor])
        self.fps = fps

    @classmethod
    def from_config(cls, config: SourceConfig, game: GameAdapter | None, seed: int) -> ScreenSource:
        return cls(fps=config.fps, region=config.region, monitor=config.monitor, window=config.window)

    def grab(self) -> np.ndarray:
        shot = self.sct.grab(self.area)
        bgra = np.asarray(shot, dtype=np.uint8)
        return np.ascontiguousarray(bgra[:, :, 2::-1])

    def frames(self) -> Iterator[Frame]:
        pacer = Pacer(self.fps, True)
        start = time.perf_counter()
        i = 0
        while True:
            pacer.wait(i / self.fps)
            yield Frame(t=time.perf_counter() - start, image=self.grab(), source="screen", index=i)
            i += 1

    def close(self) -> None:
        self.sct.close()
