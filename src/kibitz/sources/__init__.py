"""Frame sources: emulated games, the screen, video files and image folders."""

from kibitz.sources.base import SOURCES, FrameSource, make_source

SOURCES.register("emulator", "kibitz.sources.emulator:EmulatorSource", "a built-in emulated game with true state")
SOURCES.register("screen", "kibitz.sources.screen:ScreenSource", "the screen (a region or a window), via mss")
SOURCES.register("video", "kibitz.sources.video:VideoSource", "a video file, via PyAV")
SOURCES.register("images", "kibitz.sources.images:ImageFolderSource", "a folder of PNG/JPEG frames")

__all__ = ["SOURCES", "FrameSource", "make_source"]
