"""Text on screen (menus, dialogue, status bars, web pages) read with rapidocr (PP-OCR ONNX models, bundled).

Two ways in:

* `OCREngine.read` takes a whole frame: text detection, then recognition of each line found. The frame is
  shrunk so its longer side is at most `max_side` first (a 720p frame on one thread of the 2-core development
  machine: ~0.45–0.6 s at 960, ~0.2–0.3 s at 640, ~0.12 s at 480 for a card of big text).
* `OCREngine.recognize` takes a crop already known to hold one line of text (a HUD region): recognition
  only, no detection (~17 ms for 128×16).

ONNX Runtime runs on one thread by default so the game keeps its CPU. Whatever the frame, these never raise:
an unusable image gives no text and a logged reason (logger "kibitz.ocr"). Text read here is untrusted
screen data: it is cleaned (control and format characters removed, whitespace collapsed, length capped) and
goes into prompts only inside the quoted game-state block, never as instructions.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from kibitz.core.errors import KibitzError, ModelError
from kibitz.core.records import RGBImage
from kibitz.perception.classifier import VISION_HINT, prepare

log = logging.getLogger("kibitz.ocr")

MIN_SIDE = 8
"""Frames and crops narrower or shorter than this many pixels (after shrinking) hold no readable text."""
MAX_SIDE = 4096
"""The largest `max_side` accepted; larger requests are clamped (detection cost grows with the area)."""
ENLARGE_BELOW = 400
"""A frame whose longer side is under this many pixels (a console's 256×240, a 320×200 PC game) is read at twice its
size when `max_side` allows: text detection misses glyphs under ~12 pixels (a status bar's captions, a lone "0%")."""
CROP_MAX_SIDE = 2048
"""Crops for `recognize` are shrunk to this longer side (recognition scales every line to 48 pixels high)."""


@dataclass(frozen=True, slots=True)
class TextBox:
    """One line of text found on a frame."""

    text: str
    box: tuple[int, int, int, int]
    """x0, y0, x1, y1 (exclusive) in the input image's pixels."""
    score: float
    """Recognition confidence, 0..1."""


def clean(text: str, limit: int = 200) -> str:
    """Screen text made safe to log and quote: control characters become spaces, invisible format characters
    (zero-width, bidirectional overrides) are dropped, whitespace is collapsed, and the result is capped."""
    chars = []
    for ch in text:
        category = unicodedata.category(ch)
        if category == "Cc":
            chars.append(" ")
        elif category[0] != "C":  # Cf, Cs, Co, Cn: format, surrogates, private use, unassigned
            chars.append(ch)
    return " ".join("".join(chars).split())[:limit].rstrip()


def shrink(image: RGBImage, max_side: int) -> tuple[RGBImage, float]:
    """The image with its longer side at most `max_side` (area averaging), and the scale applied."""
    h, w = image.shape[:2]
    longest = max(h, w)
    if longest <= max_side:
        return image, 1.0
    import cv2

    step = longest // (4 * max_side)
    if step > 1:  # a huge frame: take every step-th pixel first so the area resize stays cheap
        image = image[::step, ::step]
    scale = max_side / longest
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    out = np.asarray(cv2.resize(np.ascontiguousarray(image), size, interpolation=cv2.INTER_AREA), dtype=np.uint8)
    return out, scale


class OCREngine:
    """rapidocr on `threads` ONNX Runtime threads; lines scoring below `min_score` are dropped."""

    def __init__(self, threads: int = 1, min_score: float = 0.5, max_chars: int = 200) -> None:
        try:
            import onnxruntime  # noqa: F401  (rapidocr imports it only when a model is first used)
            from rapidocr import RapidOCR
        except ImportError as exc:
            raise KibitzError(f"Reading text on screen needs rapidocr and onnxruntime: {VISION_HINT}") from exc
        self.threads = max(1, min(threads, os.cpu_count() or 1))  # rapidocr ignores counts above the CPU count
        self.min_score = min_score
        self.max_chars = max_chars
        self._lock = threading.Lock()  # rapidocr keeps the use_det/use_rec switches of the last call
        self.engine: Any = RapidOCR(
            params={
                "Global.log_level": "error",
                "Global.max_side_len": MAX_SIDE,  # shrinking is done here, with area averaging
                "Global.use_cls": False,  # screen text is upright: no 180° classifier
                "EngineConfig.onnxruntime.intra_op_num_threads": self.threads,
                "EngineConfig.onnxruntime.inter_op_num_threads": 1,
                "Det.limit_type": "max",
                "Det.limit_side_len": MAX_SIDE,
            }
        )
        try:  # load both models now: a missing or corrupt model is a setup problem, not a per-frame one
            blank = np.full((48, 160, 3), 255, np.uint8)
            self._run(blank, detect=True)
            self._run(blank, detect=False)
        except Exception as exc:
            raise ModelError(f"The OCR models could not be loaded ({exc}); reinstall them: {VISION_HINT}") from exc

    def _run(self, rgb: RGBImage, detect: bool) -> Any:
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])  # rapidocr takes arrays as BGR, like OpenCV
        with self._lock:
            return self.engine(bgr, use_det=detect, use_cls=False, use_rec=True, text_score=self.min_score)

    def read(self, image: RGBImage, max_side: int = 960) -> list[TextBox]:
        """Text lines of a whole frame in reading order; [] (with a logged reason) for an unusable frame.

        Greyscale, RGBA and float images are converted; frames larger than `max_side` are shrunk for
        detection, frames smaller than `ENLARGE_BELOW` enlarged, and boxes are given back in the input image's pixels.
        """
        try:
            a = prepare(image)
        except (ValueError, TypeError) as exc:
            log.info("OCR skipped: %s", exc)
            return []
        h, w = a.shape[:2]
        max_side = max(32, min(int(max_side), MAX_SIDE))
        if max(h, w) < ENLARGE_BELOW and 2 * max(h, w) <= max_side:
            import cv2  # a small frame's text (a console's 8-pixel font) is read at twice its size

            small, scale = np.asarray(cv2.resize(a, (2 * w, 2 * h), interpolation=cv2.INTER_CUBIC), np.uint8), 2.0
        else:
            small, scale = shrink(a, max_side)
        if min(small.shape[:2]) < MIN_SIDE:
            log.info("OCR skipped: a %d×%d frame is too narrow to read once shrunk to %d pixels", w, h, max_side)
            return []
        try:
            out = self._run(small, detect=True)
        except Exception as exc:  # a last guard: a frame must never stop the loop
            log.warning("OCR failed on a %d×%d frame: %s", w, h, exc)
            return []
        if getattr(out, "boxes", None) is None or getattr(out, "txts", None) is None:
            return []
        boxes: list[TextBox] = []
        for pts, raw, score in zip(out.boxes, out.txts, out.scores, strict=False):
            text = clean(str(raw), self.max_chars)
            if float(score) < self.min_score or not any(ch.isalnum() for ch in text):
                continue  # low confidence, or only punctuation and symbols (borders, dotted lines)
            xy = np.asarray(pts, dtype=np.float64).reshape(-1, 2) / scale
            x0, y0 = max(0, math.floor(xy[:, 0].min())), max(0, math.floor(xy[:, 1].min()))
            x1, y1 = min(w, math.ceil(xy[:, 0].max())), min(h, math.ceil(xy[:, 1].max()))
            if x1 > x0 and y1 > y0:
                boxes.append(TextBox(text, (x0, y0, x1, y1), round(float(score), 4)))
        return boxes

    def recognize(self, crop: RGBImage) -> tuple[str, float]:
        """The text of a crop holding one line (a known HUD region) and its confidence, without detection.

        ("", score) when the confidence is below `min_score`, ("", 0.0) for an unusable crop.
        """
        try:
            a = prepare(crop)
        except (ValueError, TypeError) as exc:
            log.info("OCR skipped a crop: %s", exc)
            return "", 0.0
        a, _ = shrink(a, CROP_MAX_SIDE)
        if min(a.shape[:2]) < MIN_SIDE:
            log.info("OCR skipped a %d×%d crop: too thin to read", a.shape[1], a.shape[0])
            return "", 0.0
        try:
            out = self._run(a, detect=False)
        except Exception as exc:
            log.warning("OCR failed on a %d×%d crop: %s", a.shape[1], a.shape[0], exc)
            return "", 0.0
        txts, scores = getattr(out, "txts", None), getattr(out, "scores", None)
        if not txts or not scores:
            return "", 0.0
        score = round(float(scores[0]), 4)
        text = clean(str(txts[0]), self.max_chars)
        return (text, score) if score >= self.min_score and text else ("", score)


def screen_lines(texts: Iterable[str], limit: int = 20) -> tuple[str, ...]:
    """The lines of screen text worth passing on, words first: lines of two characters or more, then lone
    numbers (a lone "5" is Pong's score, but a Minesweeper board is full of them; a lone "x" is noise)."""
    kept = [t for t in texts if len(t) > 1 or t.isdigit()]
    return tuple([t for t in kept if not t.isdigit()] + [t for t in kept if t.isdigit()])[:limit]
