"""Read labelled numbers from a screen's OCR text: "HP:12(12)", "Dlvl:3", a "HEALTH" caption under "87%".

For games kibitz has no HUD file for, a player (or the bench) can name a field's on-screen label; the value is
the first number after the label in the same text line, else the nearest number-only line within a few line
heights (status bars often print the caption under the value).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from kibitz.perception.ocr import TextBox

_NUMBER = re.compile(r"-?\d+")


def _centre(box: TextBox) -> tuple[float, float]:
    x0, y0, x1, y1 = box.box
    return (x0 + x1) / 2, (y0 + y1) / 2


def _number_only(text: str) -> int | None:
    stripped = text.strip().rstrip("%").strip()
    return int(stripped) if re.fullmatch(r"-?\d+", stripped) else None


def read_labelled(boxes: Iterable[TextBox], labels: Mapping[str, Iterable[str]]) -> dict[str, int]:
    """{field: value} for every field whose label is on screen next to a number."""
    lines = list(boxes)
    out: dict[str, int] = {}
    for name, names in labels.items():
        for label in names:
            if not label:
                continue
            pattern = re.compile(re.escape(label.lower()) + r"\s*[:=]?\s*(-?\d+)")
            found = None
            for box in lines:
                m = pattern.search(box.text.lower())
                if m is not None:
                    found = int(m.group(1))
                    break
                if label.lower() in box.text.lower() and found is None:
                    found = _nearest_number(box, lines)
                    if found is not None:
                        break
            if found is not None:
                out[name] = found
                break
    return out


def _nearest_number(label: TextBox, lines: list[TextBox]) -> int | None:
    lx, ly = _centre(label)
    height = max(label.box[3] - label.box[1], 1)
    best: tuple[float, int] | None = None
    for box in lines:
        value = _number_only(box.text)
        if value is None or box is label:
            continue
        x, y = _centre(box)
        distance = ((x - lx) ** 2 + (y - ly) ** 2) ** 0.5
        if distance <= 3 * height and (best is None or distance < best[0]):
            best = (distance, value)
    return None if best is None else best[1]
