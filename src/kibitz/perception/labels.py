"""Read labelled numbers from a screen's OCR text: "HP:12(12)", "Dlvl:3", "T:1042", a "HEALTH" caption under "87%".

For games kibitz has no HUD file for, a player (or the bench) names a field's on-screen label. A label is written
`LABEL` or `LABEL@HOW`, where HOW says where the number is:

- nothing or `after`: the number right after the label on its line ("HP:12", "Dlvl 3"), else the nearest
  number-only text within a few line heights (a caption beside or under its value);
- `max`: the second number of a `cur(max)` or `cur/max` pair after the label ("HP:12(15)" gives 15; plain `HP`
  gives 12);
- `above` / `under`: the number is above / under the label (a shooter's status bar prints captions under big
  numbers: `HEALTH@above`).

Labels match on word boundaries, case-insensitively: `T` is found in "T:1042" but not inside "St:18" or "Turn".
A percentage reads as its number ("87%" is 87). Numbers that OCR glued into one box ("24100%" over the captions
AMMO and HEALTH) are split by where the captions sit: each character goes to the nearest caption, its position
taken from the frame's columns of ink (or an equal share of the box's width without the frame).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from kibitz.core.config import LABEL_PLACES
from kibitz.core.records import RGBImage
from kibitz.perception.ocr import TextBox

PLACES = LABEL_PLACES
_VALUE = re.compile(r"\s*[:=]?\s*(-?\d+)\s*%?(?:\s*(?:\(\s*(\d+)\s*\)|/\s*(\d+)))?")
_NUMBER_ONLY = re.compile(r"\s*(-?\d+)\s*%?\s*")
_DIGITS = re.compile(r"\d+")
_LOOK_ALIKE = {
    ch: "[" + re.escape(group) + "]" for group in ("li1|", "o0", "s5", "b8", "z2") for ch in group if ch.isalpha()
}
"""Characters OCR confuses on screen fonts (a label letter matches its look-alikes; digits stay digits)."""
CAPTION_MIN = 4


@dataclass(frozen=True, slots=True)
class Label:
    """One way a field is labelled on screen."""

    text: str
    where: str = "after"

    @classmethod
    def parse(cls, spec: str) -> Label:
        """`HP`, `HP@max`, `HEALTH@above`...; a ValueError naming the choices for anything else."""
        text, _, where = spec.partition("@")
        where = where.strip().lower() or "after"
        if not text.strip():
            raise ValueError(f"the label {spec!r} has no text before its @")
        if where not in PLACES:
            raise ValueError(f"the label {spec!r} says @{where}; use one of {', '.join('@' + p for p in PLACES)}")
        return cls(text.strip(), where)

    def describe(self) -> str:
        """The label in words, for a person or a model: "HP", "the second number after HP", "the number above AMMO"."""
        return {
            "after": self.text,
            "max": f"the second number after {self.text}",
            "above": f"the number above {self.text}",
            "under": f"the number under {self.text}",
        }[self.where]

    @property
    def caption(self) -> bool:
        """A caption above or under its number, of `CAPTION_MIN` letters or more: OCR often glues a status bar's
        captions to each other or to a stray letter ("AMMOOHEALTH", "ARMORO"), so it is found inside a word too."""
        return self.where in ("above", "under") and len(self.text) >= CAPTION_MIN

    def pattern(self) -> re.Pattern[str]:
        """The label as a whole word: not inside another word ("T" is not in "St:"), digits may follow; a letter OCR
        often takes for another matches that one too ("Dlvl" matches "Divl", "AMMO" matches "AMM0")."""
        return re.compile(r"(?<![^\W\d_])" + self._body() + r"(?![^\W\d_])", re.IGNORECASE)

    def glued(self) -> re.Pattern[str]:
        """The label anywhere, inside a word too (for a caption), else as `pattern`."""
        return re.compile(self._body(), re.IGNORECASE) if self.caption else self.pattern()

    def _body(self) -> str:
        return "".join(_LOOK_ALIKE.get(ch.lower(), re.escape(ch)) for ch in self.text)


def _centre(box: tuple[int, int, int, int]) -> tuple[float, float]:
    x0, y0, x1, y1 = box
    return (x0 + x1) / 2, (y0 + y1) / 2


def _numbers_only(text: str) -> bool:
    """A box of numbers only ("87%", "24 100% 7%"): the values of captions elsewhere."""
    return bool(text.strip()) and all(_NUMBER_ONLY.fullmatch(part) for part in text.split())


def _number_only(text: str) -> int | None:
    m = _NUMBER_ONLY.fullmatch(text)
    return int(m.group(1)) if m else None


def _after(label: Label, box: TextBox) -> int | None:
    """The number right after the label in this box (the pair's second number for `@max`), or None."""
    for m in label.pattern().finditer(box.text):
        value = _VALUE.match(box.text, m.end())
        if value is None:
            continue
        if label.where != "max":
            return int(value.group(1))
        second = value.group(2) or value.group(3)
        if second is not None:
            return int(second)
    return None


def char_centres(box: TextBox, image: RGBImage | None) -> list[float]:
    """The x centre of each character of a box's text (spaces included): from the picture's columns of ink when they
    split into as many glyphs as the text has visible characters, else an equal share of the box's width each."""
    text = box.text
    x0, y0, x1, y1 = box.box
    uniform = [x0 + (i + 0.5) * (x1 - x0) / max(len(text), 1) for i in range(len(text))]
    visible = [i for i, ch in enumerate(text) if not ch.isspace()]
    if image is None or not visible:
        return uniform
    crop = np.asarray(image[y0:y1, x0:x1], dtype=np.int16)
    if crop.ndim != 3 or crop.size == 0:
        return uniform
    edge = np.concatenate([crop[0], crop[-1], crop[:, 0], crop[:, -1]])
    ink = (np.abs(crop - np.median(edge, axis=0)).max(axis=2) > 60).any(axis=0)
    runs: list[tuple[int, int]] = []
    start: int | None = None
    for x, on in enumerate([*ink.tolist(), False]):
        if on and start is None:
            start = x
        elif not on and start is not None:
            runs.append((start, x))
            start = None
    if len(runs) != len(visible):
        return uniform
    out = list(uniform)
    for i, (a, b) in zip(visible, runs, strict=True):
        out[i] = x0 + (a + b) / 2
    return out


@dataclass(frozen=True, slots=True)
class Token:
    """A word or a number of a text box, with where its characters sit."""

    text: str
    box: TextBox
    xs: tuple[float, ...]
    """The x centre of each character."""

    @property
    def x0(self) -> float:
        return self.xs[0]

    @property
    def x1(self) -> float:
        return self.xs[-1]

    @property
    def x(self) -> float:
        return (self.x0 + self.x1) / 2

    @property
    def y(self) -> float:
        return _centre(self.box.box)[1]


def tokens(box: TextBox, image: RGBImage | None) -> list[Token]:
    xs = char_centres(box, image)
    return [Token(m.group(), box, tuple(xs[m.start() : m.end()])) for m in re.finditer(r"\S+", box.text)]


def split_captions(words: list[Token], captions: list[re.Pattern[str]]) -> list[Token]:
    """Words with the captions glued into them taken apart: "AMMOOHEALTH" is AMMO and HEALTH (each where its letters
    are; the glue is dropped), "ARMORO" is ARMOR; any other word is kept whole."""
    out: list[Token] = []
    for word in words:
        found = sorted((m.start(), m.end()) for p in captions for m in p.finditer(word.text))
        parts: list[tuple[int, int]] = []
        for a, b in found:  # leftmost first, never overlapping
            if not parts or a >= parts[-1][1]:
                parts.append((a, b))
        if not parts or parts == [(0, len(word.text))]:
            out.append(word)
        else:
            out += [Token(word.text[a:b], word.box, word.xs[a:b]) for a, b in parts]
    return out


def _value(token: Token, caption: Token, captions: list[Token]) -> int | None:
    """The caption's number in a number token; when several captions sit under (or over) it, OCR glued their numbers
    together ("24100%"), and each character goes to the caption whose centre is nearest."""
    under = [c for c in captions if token.x0 - _half(c) <= c.x <= token.x1 + _half(c)]
    if caption not in under or len(under) < 2:
        return _number_only(token.text)
    centres = [c.x for c in under]
    mine = under.index(caption)
    picked = "".join(
        ch
        for ch, x in zip(token.text, token.xs, strict=True)
        if ch.isdigit() and min(range(len(centres)), key=lambda k: abs(centres[k] - x)) == mine
    )
    digits = _DIGITS.search(picked)
    return int(digits.group()) if digits else None


def _half(token: Token) -> float:
    return max((token.x1 - token.x0) / 2, 1.0)


def _nearby(label: Label, at: Token, words: list[Token], numbers: list[Token]) -> int | None:
    """A number near the label: anywhere within three line heights (after), or above / under it."""
    height = max(at.box.box[3] - at.box.box[1], 1)
    best: tuple[float, int] | None = None
    captions = [w for w in words if abs(w.y - at.y) <= height / 2]
    for number in numbers:
        nb = number.box.box
        if label.where in ("above", "under"):
            beside = number.x0 - 2 * _half(at) <= at.x <= number.x1 + 2 * _half(at)
            side = (
                nb[3] <= at.box.box[1] + height / 2 if label.where == "above" else nb[1] >= at.box.box[3] - height / 2
            )
            if not (beside and side):
                continue
            distance = abs(number.y - at.y) + abs(number.x - at.x) / 4
            reach = 3 * max(height, nb[3] - nb[1])
        else:
            distance = ((number.x - at.x) ** 2 + (number.y - at.y) ** 2) ** 0.5
            reach = 3 * height
        if distance > reach:
            continue
        value = _value(number, at, captions)
        if value is not None and (best is None or distance < best[0]):
            best = (distance, value)
    return None if best is None else best[1]


def read_labelled(
    boxes: Iterable[TextBox],
    labels: Mapping[str, Iterable[str]],
    image: RGBImage | None = None,
    recognize: Callable[[RGBImage], tuple[str, float]] | None = None,
) -> dict[str, int]:
    """{field: value} for every field whose label is on screen with its number where the label says; `image` (the
    frame the boxes were read from) places the characters of glued numbers exactly, and with `recognize` (an
    `OCREngine.recognize`) a caption whose number the text lacks gets the strip beside it read on its own."""
    lines = list(boxes)
    out: dict[str, int] = {}
    cache: list[tuple[list[Token], list[Token]]] = []
    parsed: dict[str, list[Label]] = {}
    for name, specs in labels.items():
        parsed[name] = []
        for spec in specs:
            try:
                parsed[name].append(Label.parse(spec))
            except ValueError:
                continue  # the config check names it; a bad label reads nothing
    captions = [label.glued() for ls in parsed.values() for label in ls if label.caption]

    def layout() -> tuple[list[Token], list[Token]]:
        """The words (no digits; glued captions taken apart) and the numbers of boxes that hold only numbers, each
        placed on the frame."""
        if not cache:
            placed = [(b, tokens(b, image)) for b in lines]
            words = [t for _, ts in placed for t in ts if not _DIGITS.search(t.text)]
            numbers = [t for b, ts in placed if _numbers_only(b.text) for t in ts]
            cache.append((split_captions(words, captions), numbers))
        return cache[0]

    for name, field_labels in parsed.items():
        for label in field_labels:
            value: int | None = None
            pattern, glued = label.pattern(), label.glued()
            for box in lines:
                if glued.search(box.text) is None:
                    continue
                if label.where in ("after", "max"):
                    value = _after(label, box)
                    if value is not None:
                        break
                    if label.where == "max":
                        continue  # a maximum is only ever in its pair
                words, numbers = layout()
                for at in words:
                    if at.box is box and pattern.fullmatch(at.text.strip(":=")) is not None:
                        value = _nearby(label, at, words, numbers)
                        if value is not None:
                            break
                if value is not None:
                    break
            if value is None and label.caption and recognize is not None and image is not None:
                value = _read_beside(label, pattern, layout()[0], image, recognize)
            if value is not None:
                out[name] = value
                break
    return out


def _read_beside(
    label: Label,
    pattern: re.Pattern[str],
    words: list[Token],
    image: RGBImage,
    recognize: Callable[[RGBImage], tuple[str, float]],
) -> int | None:
    """A caption is on screen but its number is not among the text found (text detection misses a lone short number
    such as a "0%"): the strip above (or under) the caption, as wide as the caption and a quarter of it on each side
    (wider takes in the panel's border, read as a "1") and three caption heights tall, is read on its own."""
    h, w = image.shape[:2]
    for at in words:
        if pattern.fullmatch(at.text.strip(":=")) is None:
            continue
        height = max(at.box.box[3] - at.box.box[1], 1)
        step = (at.x1 - at.x0) / max(len(at.text) - 1, 1)
        half = (at.x1 - at.x0 + step) / 2
        x0, x1 = max(0, round(at.x - 1.5 * half)), min(w, round(at.x + 1.5 * half))
        top, bottom = at.box.box[1], at.box.box[3]
        y0, y1 = (max(0, top - 3 * height), top) if label.where == "above" else (bottom, min(h, bottom + 3 * height))
        if x1 - x0 < 4 or y1 - y0 < 4:
            continue
        text, _ = recognize(np.ascontiguousarray(image[y0:y1, x0:x1]))
        value = _number_only(text)
        if value is not None:
            return value
    return None
