"""The scene a screen's text names: "GAME OVER", "PAUSED", "PRESS START", "NOW LOADING", a level card's "WORLD 1-1"
(English and Korean).

A title card says what the screen is better than its picture does, in any game: the words are data
(`core/data/scene_words.yaml`). A line names a scene only when it holds one of the phrases as whole words and is
short (at most `MAX_WORDS` words): a banner, not a sentence in a dialogue ("I paused for a second") or a help bar
("P: pause  M: map  Esc: menu").

A phrase with `#` in it ("stage #") is a level card's: `#` is a number ("3", "1-1", "2.4"). Many games keep such a
line in their HUD while they are played ("LEVEL 3" over the play), so a card phrase names a scene only on a screen
that is text and little else (`card=True`: `is_card` on the frame the text was read from, or the picture is nearer to
text-only screens than to any game's look) and only when it is the whole line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING

import numpy as np
import yaml

if TYPE_CHECKING:
    from kibitz.core.records import RGBImage
    from kibitz.perception.ocr import TextBox

MAX_WORDS = 4
CARD_INK = 0.02
"""A card: at most this share of the picture, outside its lines of text, differs from the background colour (a level
card's little player sprite beside "× 3" is ~0.4 % of SMB's screen; a game's play is far more)."""
CARD_SIDE = 320
"""`is_card` looks at the picture shrunk (by taking every n-th pixel) to at most this many pixels a side."""
INK_STEP = 48
"""A pixel is ink when one of its channels is this far from the background colour's."""
NUMBER = r"\d+(?:\s*[-–.]\s*\d+)?"
"""What `#` stands for in a card phrase: a level's number ("3", "1-1", "2.4")."""


@dataclass(frozen=True, slots=True)
class Phrase:
    pattern: re.Pattern[str]
    card: bool
    """A level card's phrase: it must be the whole line, on a text-only screen."""

    def names(self, line: str, card: bool) -> bool:
        if self.card:
            return card and self.pattern.fullmatch(line) is not None
        return self.pattern.search(line) is not None


@cache
def _phrases() -> tuple[tuple[str, tuple[Phrase, ...]], ...]:
    text = resources.files("kibitz.core").joinpath("data/scene_words.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    return tuple((scene, tuple(_phrase(p) for p in phrases)) for scene, phrases in data.items())


def _phrase(phrase: str) -> Phrase:
    """A phrase as whole words; a Korean one may take a particle or an ending after it ("사망했습니다")."""
    korean = any("\uac00" <= ch <= "\ud7a3" for ch in phrase)
    card = "#" in phrase
    parts = [re.escape(part) for part in phrase.lower().split("#")]
    if card:  # OCR often drops the space before a level's number ("WORLD1-1")
        parts = [part.replace(r"\ ", r"\s?") for part in parts]
    body = NUMBER.join(parts)
    return Phrase(re.compile(r"(?<!\w)" + body + ("" if korean else r"(?!\w)")), card)


def scene_in_text(lines: Iterable[str], card: bool = False) -> str | None:
    """The scene the first matching short line names, in the order of the data file; None when none does. `card`:
    the screen is text only, so a level card's line ("WORLD 1-1") names its scene too."""
    short = [" ".join(line.lower().split()) for line in lines if 0 < len(line.split()) <= MAX_WORDS]
    for scene, phrases in _phrases():
        if any(p.names(line, card) for line in short for p in phrases):
            return scene
    return None


def is_card(image: RGBImage, boxes: Sequence[TextBox]) -> bool:
    """A screen of text and little else (a level card, "GAME OVER" on black): some text, and outside its lines (each
    grown by half its height) at most `CARD_INK` of the picture differs from the background, its most common colour."""
    if not boxes or image.ndim != 3 or image.shape[0] == 0 or image.shape[1] == 0:
        return False
    step = max(1, -(-max(image.shape[:2]) // CARD_SIDE))
    small = image[::step, ::step, :3].astype(np.int16)
    coarse = small >> 4  # colours to 16 levels a channel, counted as one number each
    mode = int(np.bincount((coarse[..., 0] * 256 + coarse[..., 1] * 16 + coarse[..., 2]).ravel()).argmax())
    ground = np.array([mode >> 8, (mode >> 4) & 15, mode & 15]) * 16 + 8
    ink = np.abs(small - ground).max(axis=2) > INK_STEP
    for box in boxes:
        x0, y0, x1, y1 = box.box
        pad = (y1 - y0) // 2
        top, left = max(0, y0 - pad) // step, max(0, x0 - pad) // step
        ink[top : -(-(y1 + pad) // step), left : -(-(x1 + pad) // step)] = False
    return float(ink.mean()) <= CARD_INK
