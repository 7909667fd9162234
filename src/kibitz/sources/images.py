"""A folder of image files, replayed in name order at a chosen rate."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from kibitz.core.config import SourceConfig
from kibitz.core.errors import SourceError
from kibitz.core.records import Frame
from kibitz.games.base import GameAdapter
from kibitz.sources.base import FrameSource, Pacer

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}


class ImageFolderSource(FrameSource):
    name = "images"

    def __init__(self, folder: Path, fps: float = 2.0, realtime: bool = True, loop: bool = False) -> None:
        if not folder.is_dir():
            raise SourceError(f"Image folder {folder} does not exist; pass --path with a folder of PNG/JPEG frames.")
        self.files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise SourceError(f"Image folder {folder} holds no PNG/JPEG/BMP/WebP files; add frames or pick another.")
        self.fps, self.realtime, self.loop = fps, realtime, loop
        self.skipped: list[tuple[Path, str]] = []

    @classmethod
    def from_config(cls, config: SourceConfig, game: GameAdapter | None, seed: int) -> ImageFolderSource:
        if not config.path:
            raise SourceError("The images source needs a folder: pass --path DIR.")
        return cls(Path(config.path), fps=config.fps, realtime=config.realtime, loop=config.loop)

    def frames(self) -> Iterator[Frame]:
        from PIL import Image, UnidentifiedImageError

        pacer = Pacer(self.fps, self.realtime)
        i = 0
        while True:
            for path in self.files:
                try:
                    with Image.open(path) as im:
                        image = np.asarray(im.convert("RGB"), dtype=np.uint8)
                except (OSError, UnidentifiedImageError, ValueError) as exc:
                    # A corrupt frame is skipped with a logged reason; the rest of the folder still plays.
                    log.warning("skipping unreadable image %s: %s", path, exc)
                    self.skipped.append((path, str(exc)))
                    continue
                t = i / self.fps
                pacer.wait(t)
                yield Frame(t=t, image=image, source=f"images:{path.parent.name}", index=i)
                i += 1
            if not self.loop:
                return
