"""A real desktop game on a real X display: Simon Tatham's Mines (Debian sgt-puzzles) under Xvfb.

kibitz captures the game's window by title with mss, reads its menu and status bar by OCR, and notices the
picture change when a cell is clicked with xdotool. Set KIBITZ_REQUIRE_DISPLAY=1 to make a missing tool a
failure instead of a skip (scripts/test.sh does where the display tools are installed).
"""

from __future__ import annotations

import os
import re
import select
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from kibitz.core.errors import SourceError

MINES = Path("/usr/games/sgt-mines")


def need(ok: bool, message: str) -> None:
    """Skip when a system tool is missing, or fail when KIBITZ_REQUIRE_DISPLAY says it must be there."""
    if ok:
        return
    if os.environ.get("KIBITZ_REQUIRE_DISPLAY"):
        pytest.fail(f"{message} (scripts/system-deps.sh installs it)")
    pytest.skip(message)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.fixture
def display(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh Xvfb on a display number it picks itself (-displayfd), so parallel runs do not collide."""
    need(shutil.which("Xvfb") is not None, "Xvfb is missing: apt-get install xvfb")
    need(shutil.which("xdotool") is not None, "xdotool is missing: apt-get install xdotool")
    read_end, write_end = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_end), "-screen", "0", "640x480x24", "-nolisten", "tcp"],
        pass_fds=(write_end,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_end)
    try:
        ready, _, _ = select.select([read_end], [], [], 10.0)
        number = os.read(read_end, 32).decode().strip() if ready else ""
        if not number.isdigit():
            pytest.fail("Xvfb did not report a display number within 10 s")
        monkeypatch.setenv("DISPLAY", f":{number}")
        yield f":{number}"
    finally:
        os.close(read_end)
        stop(proc)


@pytest.fixture
def mines(display: str) -> Iterator[tuple[int, int, int, int]]:
    """A Mines window (9×9, 10 mines: the default), and its left, top, width and height once it is drawn."""
    from kibitz.sources.screen import window_region

    need(MINES.is_file(), f"{MINES} is missing: apt-get install sgt-puzzles")
    env = {**os.environ, "DISPLAY": display, "NO_AT_BRIDGE": "1", "GDK_BACKEND": "x11"}
    game = subprocess.Popen([str(MINES)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15.0
        while True:
            try:
                region = window_region("Mines")
                break
            except SourceError:
                if game.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the Mines window never appeared (game exit code {game.poll()})")
                time.sleep(0.1)
        yield region
    finally:
        stop(game)


def words(texts: list[str]) -> str:
    return " ".join(" ".join(texts).lower().split())


@pytest.mark.display
def test_desktop_game_window_is_captured_read_and_its_changes_seen(mines: tuple[int, int, int, int]) -> None:
    pytest.importorskip("mss", reason="install kibitz[capture] for screen capture")
    pytest.importorskip("rapidocr", reason="install kibitz[vision] for OCR")
    from kibitz.perception.change import ChangeDetector
    from kibitz.perception.ocr import OCREngine
    from kibitz.sources.screen import ScreenSource

    left, top, width, height = mines
    assert 150 <= width <= 640 and 150 <= height <= 480
    source = ScreenSource(fps=10, window="Mines")
    change = ChangeDetector()
    start = time.perf_counter()
    try:
        # The game draws itself shortly after its window is mapped: wait for a non-blank picture.
        frames = source.frames()
        frame = next(frames)
        while change.update(frame.image, frame.t).blank and time.perf_counter() - start < 10:
            frame = next(frames)
        assert frame.image.shape == (height, width, 3) and frame.image.dtype == np.uint8
        assert frame.source == "screen" and frame.image.std() > 10  # a grid and text, not an empty window

        # Its menu bar and status bar, read by OCR on the captured frame.
        ocr = OCREngine(threads=1)
        boxes = ocr.read(frame.image)
        text = words([b.text for b in boxes])
        assert "game" in text and "help" in text, text
        assert re.search(r"marked:?\s*0\s*/\s*10", text), text  # "[0:00] Marked: 0 / 10"
        status = next(b for b in boxes if "marked" in b.text.lower())
        assert status.box[1] > height * 0.75  # the status bar is at the bottom of the window
        menu = next(b for b in boxes if "help" in b.text.lower())
        assert menu.box[3] < height * 0.25  # the menu bar at the top

        # Nothing moves before the first click (the clock starts with it): the picture is still.
        for _ in range(3):
            still = change.update(source.grab(), time.perf_counter() - start)
            time.sleep(0.1)
        assert still.diff < 0.002 and still.static_s > 0.15 and not still.blank

        # Click the middle cell of the 9×9 board: the first click in Mines is safe and opens an area.
        board_x, board_y = left + width // 2, top + round(height * 0.48)
        subprocess.run(["xdotool", "mousemove", "--sync", str(board_x), str(board_y), "click", "1"], check=True)
        for _ in range(30):
            time.sleep(0.1)
            after = change.update(source.grab(), time.perf_counter() - start)
            if after.diff > 0.0:
                break
        assert after.diff > 0.005 and after.static_s == 0.0, after
        assert not after.blank
        opened = source.grab()
        assert np.abs(opened.astype(int) - frame.image.astype(int)).max() > 50  # cells were opened
    finally:
        source.close()


@pytest.mark.display
def test_watch_comments_on_a_desktop_game_from_pixels_alone(mines: tuple[int, int, int, int], tmp_path: Path) -> None:
    """`kibitz watch --source screen --window Mines`: a player clicks until a mine goes off; kibitz sees it."""
    import json
    import sys

    pytest.importorskip("mss", reason="install kibitz[capture] for screen capture")
    pytest.importorskip("rapidocr", reason="install kibitz[vision] for OCR")
    from fake_openai import FakeOpenAI

    left, top, width, height = mines
    with FakeOpenAI() as server:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kibitz",
                "watch",
                "--source",
                "screen",
                "--window",
                "Mines",
                "--fps",
                "10",
                "--max-seconds",
                "40",
                "--jsonl",
                "--backend",
                "openai",
                "--base-url",
                server.base_url,
                "--model",
                "f",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "KIBITZ_HOME": str(tmp_path), "PYTHONUNBUFFERED": "1"},
        )
        try:
            assert proc.stdout is not None
            first = proc.stdout.readline()  # the first route record: perception is running
            assert first.strip(), proc.communicate(timeout=60)[1]
            assert json.loads(first) == {"kind": "route", "t": 0.0, "path": "fast", "reason": "no VLM configured"}
            time.sleep(4)  # let the first OCR read set the starting text
            # Click every cell, row by row, as an impatient player would: one of the 10 mines goes off.
            for row in range(9):
                for col in range(9):
                    x = left + round(width * (40 + 20 * col) / 240)
                    y = top + round(height * (65 + 20 * row) / 302)
                    subprocess.run(["xdotool", "mousemove", "--sync", str(x), str(y), "click", "1"], check=True)
                    time.sleep(0.12)
            rest, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, err
    rows = [json.loads(line) for line in (first + rest).splitlines() if line.strip()]
    events = [r for r in rows if r["kind"] == "event"]
    assert any(e["type"] == "death" and e["data"].get("from_text") for e in events), events
    lines = [r for r in rows if r["kind"] == "utterance"]
    assert lines and all(u["text"] for u in lines)
    # The screen's words reached the model only inside the quoted state block, never as an instruction.
    prompts = [r["messages"][-1]["content"] for r in server.requests if "GAME STATE" in r["messages"][-1]["content"]]
    dead = [p for p in prompts if "DEAD" in p.upper()]
    assert dead and all(p.upper().index("DEAD") < p.rindex('"""') for p in dead)
