"""OCR with the real rapidocr models on text rendered with Pillow: words, boxes, crops, garbage and bad images."""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from kibitz.core.errors import KibitzError
from kibitz.perception.ocr import OCREngine, TextBox, clean

pytest.importorskip("rapidocr", reason='install kibitz[vision] for OCR: pip install "kibitz[vision]"')

DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
LINES = {  # text → where it is drawn on a 1280×720 screen
    "PRESS START": (90, 60),
    "Score 12345": (900, 60),
    "World 1-2": (520, 330),
    "Continue? Yes / No": (300, 600),
}
Box = tuple[int, int, int, int]


def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.truetype(str(DEJAVU), size) if DEJAVU.is_file() else ImageFont.load_default(size=size)


def words(text: str) -> str:
    """Lower case, punctuation and spacing ignored: what a reader would call the same words."""
    return " ".join(re.sub(r"[^0-9a-z]+", " ", text.lower()).split())


def screen(size: tuple[int, int] = (1280, 720)) -> tuple[np.ndarray, dict[str, Box]]:
    """A dark game screen with the LINES in light text, and where each line's ink lies."""
    img = Image.new("RGB", size, (20, 24, 40))
    draw = ImageDraw.Draw(img)
    scale = size[0] / 1280
    drawn: dict[str, Box] = {}
    for text, (x, y) in LINES.items():
        xy = (round(x * scale), round(y * scale))
        draw.text(xy, text, font=font(round(28 * scale)), fill=(235, 235, 235))
        x0, y0, x1, y1 = draw.textbbox(xy, text, font=font(round(28 * scale)))
        drawn[text] = (int(x0), int(y0), int(x1), int(y1))
    return np.asarray(img), drawn


def find(boxes: list[TextBox], text: str) -> TextBox:
    hits = [b for b in boxes if words(text) in words(b.text)]
    assert hits, f"{text!r} not read; read {[b.text for b in boxes]}"
    return hits[0]


def around(found: Box, drawn: Box, slack: int) -> bool:
    """The box found covers the drawn ink and extends at most `slack` pixels beyond it on each side."""
    fx0, fy0, fx1, fy1 = found
    dx0, dy0, dx1, dy1 = drawn
    covers = fx0 <= dx0 + 3 and fy0 <= dy0 + 3 and fx1 >= dx1 - 3 and fy1 >= dy1 - 3
    tight = fx0 >= dx0 - slack and fy0 >= dy0 - slack and fx1 <= dx1 + slack and fy1 <= dy1 + slack
    return covers and tight


@pytest.fixture(scope="module")
def ocr() -> OCREngine:
    return OCREngine(threads=1)


@pytest.mark.parametrize("max_side", [960, 640])
def test_reads_screen_text_where_it_was_drawn(ocr: OCREngine, max_side: int) -> None:
    image, drawn = screen()
    boxes = ocr.read(image, max_side=max_side)
    assert len(boxes) == len(LINES)
    for text, where in drawn.items():
        box = find(boxes, text)
        assert box.score >= ocr.min_score
        assert around(box.box, where, slack=20), (text, box.box, where)
    assert [b.text for b in boxes][:2] == ["PRESS START", "Score 12345"]  # reading order: rows, then columns


def test_boxes_are_in_the_input_pixels_of_a_large_frame(ocr: OCREngine) -> None:
    image, drawn = screen((2560, 1440))  # shrunk to 960 for detection, boxes scaled back
    boxes = ocr.read(image, max_side=960)
    for text, where in drawn.items():
        assert around(find(boxes, text).box, where, slack=40)


def test_recognize_a_hud_crop(ocr: OCREngine) -> None:
    crop = Image.new("RGB", (128, 16), (0, 0, 0))
    ImageDraw.Draw(crop).text((2, 1), "SCORE 004200", font=font(12), fill=(255, 255, 255))
    text, score = ocr.recognize(np.asarray(crop))
    assert words(text) == "score 004200" and score >= 0.5
    image, drawn = screen()
    x0, y0, x1, y1 = drawn["Score 12345"]
    text, score = ocr.recognize(image[y0 - 4 : y1 + 4, x0 - 4 : x1 + 4])
    assert words(text) == "score 12345" and score >= 0.9


def test_nothing_read_from_blank_or_noise(ocr: OCREngine) -> None:
    assert ocr.read(np.zeros((720, 1280, 3), np.uint8)) == []
    assert ocr.read(np.full((720, 1280, 3), 255, np.uint8)) == []
    noise = np.random.default_rng(0).integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    assert all(b.score >= ocr.min_score and b.text for b in ocr.read(noise))
    assert ocr.recognize(np.zeros((16, 128, 3), np.uint8))[0] == ""
    text, score = ocr.recognize(noise[:16, :128])
    assert text == "" or score >= ocr.min_score


def test_min_score_is_a_parameter() -> None:
    strict = OCREngine(min_score=1.01)  # nothing is that sure
    image, _ = screen()
    assert strict.read(image) == []
    text, score = strict.recognize(image[50:100, 80:290])
    assert text == "" and 0.5 < score <= 1.0


def test_converted_images_are_read(ocr: OCREngine) -> None:
    image, _ = screen()
    grey = image.mean(axis=2).astype(np.uint8)
    rgba = np.dstack([image, np.full(image.shape[:2], 255, np.uint8)])
    floats = image.astype(np.float32) / 255.0
    variants: list[Any] = [grey, grey[:, :, None], rgba, floats, np.asfortranarray(image)]
    for variant in variants:
        assert "press start" in [words(b.text) for b in ocr.read(variant)]


@pytest.mark.parametrize(
    ("image", "unusable"),
    [
        (np.zeros((0, 0, 3), np.uint8), True),
        (np.zeros((5, 5, 3), np.uint8), True),
        (np.zeros((4, 3000, 3), np.uint8), True),
        (np.zeros((8, 20000, 3), np.uint8), True),  # too thin once shrunk to max_side
        (np.zeros((100, 100, 2), np.uint8), True),
        (np.zeros((20, 20, 3, 2), np.uint8), True),
        (np.array([["a", "b"]]), True),
        (None, True),
        (np.full((50, 50, 3), np.nan, np.float32), False),  # converted to a black picture: no text in it
        (np.full((50, 50, 3), -7.0), False),
    ],
    ids=["empty", "tiny", "thin", "thin-after-shrink", "2ch", "4d", "str", "none", "nan", "negative"],
)
def test_bad_images_give_nothing_and_a_reason(
    ocr: OCREngine, image: np.ndarray, unusable: bool, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="kibitz.ocr"):
        assert ocr.read(image) == []
        assert ocr.recognize(image)[0] == ""
    assert ("OCR skipped" in caplog.text) == unusable


def test_huge_frame_is_shrunk_not_refused(ocr: OCREngine) -> None:
    image, _ = screen()
    huge = np.asarray(Image.fromarray(image).resize((7680, 4320), Image.Resampling.NEAREST))  # 8K
    assert "score 12345" in [words(b.text) for b in ocr.read(huge, max_side=960)]
    assert ocr.read(image, max_side=100_000)  # clamped, not an 100000-pixel detection pass


def test_clean_text() -> None:
    assert clean("  Game\x00Over\n\tPress  \x1b[0m start ") == "Game Over Press [0m start"
    assert clean("a\u200bb\u202ec\ufeff") == "abc"  # zero-width and bidi controls dropped
    assert clean("x" * 500) == "x" * 200
    assert clean("word " * 100, limit=12) == "word word wo"


def test_threads_are_clamped(ocr: OCREngine) -> None:
    assert ocr.threads == 1
    assert 1 <= OCREngine(threads=999).threads <= 999


def test_missing_rapidocr_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "rapidocr", None)  # as if it were not installed
    with pytest.raises(KibitzError, match=r'pip install "kibitz\[vision\]"'):
        OCREngine()
