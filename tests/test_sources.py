"""Frame sources on real media: PNG folders, an encoded video, and a real X display (Xvfb)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from itertools import islice, pairwise
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kibitz.core.errors import SourceError
from kibitz.games import get_game
from kibitz.sources.emulator import EmulatorSource
from kibitz.sources.images import ImageFolderSource
from kibitz.sources.video import VideoSource


def game_frames(n: int) -> list[np.ndarray]:
    source = EmulatorSource(get_game("breakout"), fps=10, realtime=False)
    return [f.image for f in islice(source.frames(), n)]


def write_video(path: Path, codec: str) -> Path:
    """Two seconds of real Breakout frames encoded at 30 fps."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=30)
        stream.width, stream.height, stream.pix_fmt = 160, 210, "yuv420p"
        for img in game_frames(60):
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def test_image_folder_skips_corrupt_frames(tmp_path: Path) -> None:
    for i, img in enumerate(game_frames(5)):
        Image.fromarray(img).save(tmp_path / f"{i:03d}.png")
    (tmp_path / "002b.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (tmp_path / "notes.txt").write_text("not a frame")
    source = ImageFolderSource(tmp_path, fps=100, realtime=False)
    frames = list(source.frames())
    assert len(frames) == 5
    assert [f.index for f in frames] == [0, 1, 2, 3, 4]
    assert frames[0].image.shape == (210, 160, 3) and frames[0].state is None
    assert len(source.skipped) == 1 and source.skipped[0][0].name == "002b.png"


def test_image_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="holds no"):
        ImageFolderSource(tmp_path)
    with pytest.raises(SourceError, match="does not exist"):
        ImageFolderSource(tmp_path / "nope")


def test_video_file_is_sampled_at_requested_rate(tmp_path: Path) -> None:
    path = write_video(tmp_path / "clip.mp4", "libx264")
    frames = list(VideoSource(path, fps=10, realtime=False).frames())
    assert 18 <= len(frames) <= 21  # 2 s of video at 10 fps
    assert frames[0].image.shape == (210, 160, 3)
    assert all(b.t > a.t for a, b in pairwise(frames))


@pytest.fixture
def xvfb() -> Iterator[str]:
    if shutil.which("Xvfb") is None:
        if os.environ.get("KIBITZ_REQUIRE_DISPLAY"):
            pytest.fail("Xvfb is missing: apt-get install xvfb (scripts/system-deps.sh installs it)")
        pytest.skip("Xvfb is not installed")
    display = ":97"
    proc = subprocess.Popen(["Xvfb", display, "-screen", "0", "320x240x24"], stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    try:
        yield display
    finally:
        proc.terminate()
        proc.wait(10)


def test_screen_capture_on_a_real_display(xvfb: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from kibitz.sources.screen import ScreenSource

    monkeypatch.setenv("DISPLAY", xvfb)
    source = ScreenSource(fps=20, region=(10, 20, 100, 50))
    frames = list(islice(source.frames(), 3))
    source.close()
    assert frames[0].image.shape == (50, 100, 3) and frames[0].image.dtype == np.uint8
    assert frames[-1].t > frames[0].t


def test_truncated_video_ends_early_without_crashing(tmp_path: Path) -> None:
    path = write_video(tmp_path / "clip.ts", "mpeg2video")  # MPEG-TS: decodable up to where it was cut
    data = path.read_bytes()
    cut = tmp_path / "cut.ts"
    cut.write_bytes(data[: len(data) // 2])
    frames = list(VideoSource(cut, fps=30, realtime=False).frames())
    assert 5 <= len(frames) < 60


def test_screen_capture_of_a_window_by_title(xvfb: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from kibitz.sources.screen import ScreenSource, window_region

    if shutil.which("xclock") is None:
        if os.environ.get("KIBITZ_REQUIRE_DISPLAY"):
            pytest.fail("xclock is missing: apt-get install x11-apps (scripts/system-deps.sh installs it)")
        pytest.skip("xclock is not installed")
    monkeypatch.setenv("DISPLAY", xvfb)
    clock = subprocess.Popen(["xclock", "-geometry", "120x90+30+40"], env={**os.environ, "DISPLAY": xvfb})
    try:
        for _ in range(50):  # wait for the window to be mapped
            try:
                region = window_region("xclock")
                break
            except SourceError:
                time.sleep(0.1)
        else:
            pytest.fail("the xclock window never appeared")
        assert region[2:] == (120, 90)
        source = ScreenSource(fps=10, window="xclock")
        frame = next(iter(source.frames()))
        source.close()
        assert frame.image.shape == (90, 120, 3)
        assert frame.image.std() > 0  # a real clock face, not an empty screen
        with pytest.raises(SourceError, match="No visible window"):
            window_region("no-such-window-title")
    finally:
        clock.terminate()
        clock.wait(10)


def test_the_pacer_notes_how_late_items_come_when_the_game_falls_behind() -> None:
    from kibitz.sources.base import Pacer

    pacer = Pacer(60.0, realtime=True)
    pacer.wait(0.01)  # on time: it sleeps, nothing is late
    time.sleep(0.1)
    pacer.wait(0.05)  # 60 ms or more behind
    assert len(pacer.late) == 1 and pacer.late[0][1] >= 0.05
