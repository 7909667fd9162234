"""A video file decoded with PyAV, sampled at a chosen rate."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kibitz.core.config import SourceConfig
from kibitz.core.errors import SourceError
from kibitz.core.records import Frame
from kibitz.games.base import GameAdapter
from kibitz.sources.base import FrameSource, Pacer


class VideoSource(FrameSource):
    name = "video"

    def __init__(self, path: Path, fps: float = 10.0, realtime: bool = True) -> None:
        try:
            import av
        except ImportError:
            raise SourceError("Video files need PyAV: pip install 'kibitz[capture]'.") from None
        if not path.is_file():
            raise SourceError(f"Video file {path} does not exist; check the path given to --path.")
        self.path, self.fps, self.realtime = path, fps, realtime
        try:
            self.container: Any = av.open(str(path))
            if not self.container.streams.video:
                raise SourceError(f"{path} has no video stream; pass a video file (mp4, mkv, webm...).")
        except av.error.FFmpegError as exc:
            raise SourceError(f"Cannot decode video {path} ({exc.__class__.__name__}); is it a video file?") from None

    @classmethod
    def from_config(cls, config: SourceConfig, game: GameAdapter | None, seed: int) -> VideoSource:
        if not config.path:
            raise SourceError("The video source needs a file: pass --path FILE.")
        return cls(Path(config.path), fps=config.fps, realtime=config.realtime)

    def frames(self) -> Iterator[Frame]:
        import av

        pacer = Pacer(self.fps, self.realtime)
        stream = self.container.streams.video[0]
        next_t, i = 0.0, 0
        try:
            for vf in self.container.decode(stream):
                t = float(vf.time) if vf.time is not None else i / self.fps
                if t + 1e-6 < next_t:
                    continue
                next_t = t + 1.0 / self.fps
                pacer.wait(t)
                yield Frame(t=t, image=vf.to_ndarray(format="rgb24"), source=f"video:{self.path.name}", index=i)
                i += 1
        except av.error.FFmpegError as exc:
            if i == 0:
                raise SourceError(
                    f"Cannot decode video {self.path} ({exc.__class__.__name__}); is it a video file?"
                ) from None
            # A truncated tail ends the video early instead of crashing the session.
            return

    def close(self) -> None:
        self.container.close()
