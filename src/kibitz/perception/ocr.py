"""Free text on screen (menus, dialogue, web pages) with rapidocr (PP-OCR ONNX models, bundled).

One intra-op thread by default so the game keeps its CPU; the frame is shrunk so its longer side is at
most `max_side` before detection. Text read here is untrusted screen data: it goes into prompts only
inside the quoted game-state block, never as instructions.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from kibitz.core.errors import KibitzError
from kibitz.core.records import RGBImage
from kibitz.perception.classifier import VISION_HINT, prepare

log = logging.getLogger("kibitz.ocr")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class TextBox:
    text: str
    box: tuple[int, int, int, int]
    """x0, y0, x1, y1 in the input image's pixels."""
    score: float


def clean(text: str, limit: int = 200) -> str:
    return " ".join(CONTROL.sub(" ", text).split())[:limit]


class OCREngine:
    def __init__(self, threads: int = 1, min_score: float = 0.5) -> None:
        try:
            from rapidocr import RapidOCR
        except ImportError as exc:
            raise KibitzError(f"Reading text on screen needs rapidocr and onnxruntime: {VISION_HINT}") from exc
        self.min_score = min_score
        self.engine: Any = RapidOCR(
            params={
                "Global.log_level": "error",
                "EngineConfig.onnxruntime.intra_op_num_threads": threads,
                "EngineConfig.onnxruntime.inter_op_num_threads": 1,
                "Det.limit_type": "max",
                "Det.limit_side_len": 960,
            }
        )

    def read(self, image: RGBImage, max_side: int = 960) -> list[TextBox]:
        """Text lines of a whole frame, top to bottom; [] (with a logged reason) for an unusable frame."""
        try:
            a = prepare(image)
        except ValueError as exc:
            log.info("OCR skipped: %s", exc)
            return []
        scale = 1.0
        if max(a.shape[:2]) > max_side:
            from PIL import Image

            scale = max_side / max(a.shape[:2])
            size = (max(1, round(a.shape[1] * scale)), max(1, round(a.shape[0] * scale)))
            a = np.asarray(Image.fromarray(a).resize(size, Image.Resampling.BILINEAR))
        out = self.engine(a[:, :, ::-1].copy())  # rapidocr expects BGR like OpenCV
        if out.boxes is None or out.txts is None or out.scores is None:
            return []
        boxes: list[TextBox] = []
        for pts, text, score in zip(out.boxes, out.txts, out.scores, strict=False):
            text = clean(str(text))
            if not text or float(score) < self.min_score:
                continue
            xs, ys = np.asarray(pts)[:, 0] / scale, np.asarray(pts)[:, 1] / scale
            boxes.append(TextBox(text, (int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())), float(score)))
        return sorted(boxes, key=lambda b: (b.box[1] // 10, b.box[0]))
