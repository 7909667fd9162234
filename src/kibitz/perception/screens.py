"""Synthetic text-only screens: the evidence that a frame shows text, not a game's own look.

A title card ("GAME OVER" on black), a terminal page, a menu list or a dialogue box looks much the same in
every game, so such a frame must never name a game by its picture alone (a game-over screen of any game
would otherwise be "Super Mario Bros." because SMB's own cards are text on black). `text_screens` draws such
screens from a seed — random words, fonts, sizes, colours and layouts, some as blocky pixel text — and the
prototype bank keeps their embeddings as a reserved class (`TEXT_SCREEN`): a frame nearer to them than to
any game's examples is a text-only frame. Nothing here comes from any game: the words are plain English.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from kibitz.core.records import RGBImage

TEXT_SCREEN = "~text"
"""The reserved label of text-only screens in a prototype bank (not a valid game name, so no game can take it)."""

_WORDS = (
    "the a you your it is was and of to in on at with for from this that here there now then again not all "
    "door key room hall path road river bridge tower gate wall stair cave forest town shop inn house ship "
    "open close take drop use look talk wait rest save load quit start press button select back yes no "
    "north south east west up down left right old new red blue green dark light small large long short "
    "friend stranger guard merchant king queen child voice letter map coin stone ring book lamp rope food"
)
"""Plain words the drawn screens are made of (split on spaces)."""
_TITLES = (
    "GAME OVER",
    "PRESS START",
    "CONTINUE?",
    "PAUSE",
    "YOU WIN",
    "LEVEL COMPLETE",
    "STAGE 2",
    "INSERT COIN",
    "PLAYER ONE",
    "HIGH SCORES",
    "THE END",
    "LOADING",
    "TRY AGAIN",
    "READY",
    "NEW RECORD",
)
_SYMBOLS = "#.|-+=*~:;<>[](){}/\\_^%&"
_SIZES = ((256, 224), (320, 240), (640, 480), (800, 600), (1280, 720), (1920, 1080))
_DARK = ((0, 0, 0), (0, 0, 0), (12, 12, 40), (25, 25, 25), (0, 30, 60), (40, 0, 0))
_LIGHT = ((255, 255, 255), (235, 230, 210), (200, 200, 200))
_INKS = ((255, 255, 255), (210, 210, 210), (255, 90, 90), (90, 240, 90), (255, 230, 60), (90, 170, 255), (240, 130, 0))


def _fonts() -> list[Path]:
    """TrueType fonts on this machine (DejaVu, Liberation, Noto...), a few of them; Pillow's own as a fallback."""
    found: list[Path] = []
    for root in (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"), Path("/System/Library/Fonts")):
        if root.is_dir():
            found += sorted(p for p in root.rglob("*.ttf") if "Emoji" not in p.name)
    return found[:: max(1, len(found) // 12)][:12]


def text_screens(n: int, seed: int, side: int = 320) -> Iterator[RGBImage]:
    """`n` text-only screens drawn from `seed` (same seed, same pictures on the same fonts), each shrunk so its
    longer side is at most `side` pixels (the embedder sees 224×224 anyway)."""
    from PIL import Image, ImageDraw, ImageFont

    rng = random.Random(seed)
    vocabulary = _WORDS.split()
    fonts = _fonts()

    def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
        if fonts and rng.random() < 0.75:
            return ImageFont.truetype(str(rng.choice(fonts)), size)
        return ImageFont.load_default(size)

    def words(lo: int, hi: int) -> str:
        return " ".join(rng.choice(vocabulary) for _ in range(rng.randint(lo, hi)))

    for i in range(n):
        w, h = rng.choice(_SIZES)
        pixel = rng.random() < 0.4  # blocky pixel text: draw small, scale up without smoothing
        scale = rng.choice((2, 3, 4)) if pixel else 1
        cw, ch = max(64, w // scale), max(48, h // scale)
        light = rng.random() < 0.15
        bg = rng.choice(_LIGHT) if light else rng.choice(_DARK)
        im = Image.new("RGB", (cw, ch), bg)
        d = ImageDraw.Draw(im)

        def ink(light: bool = light) -> tuple[int, int, int]:
            return (0, 0, 0) if light else rng.choice(_INKS)

        layout = i % 4
        if layout == 0:  # a title card, sometimes with a line or two under it
            f = font(max(8, ch // rng.choice((5, 7, 9, 12))))
            text = rng.choice(_TITLES)
            x0, _, x1, _ = d.textbbox((0, 0), text, font=f)
            d.text(((cw - (x1 - x0)) // 2, int(ch * rng.uniform(0.25, 0.5))), text, font=f, fill=ink())
            small = font(max(6, ch // 22))
            for k in range(rng.randint(0, 3)):
                line = rng.choice((f"SCORE {rng.randint(0, 999999)}", words(1, 4).upper(), f"x {rng.randint(0, 9)}"))
                d.text((cw // rng.randint(3, 5), int(ch * (0.65 + 0.08 * k))), line, font=small, fill=ink())
        elif layout == 1:  # a terminal page: lines of words, some of symbols, a status line
            size = max(6, ch // rng.randint(18, 32))
            f = font(size)
            for r in range(rng.randint(3, max(4, ch // size - 2))):
                line = (
                    "".join(rng.choice(_SYMBOLS + " " * 6) for _ in range(rng.randint(4, 50)))
                    if rng.random() < 0.35
                    else words(1, 9)
                )
                d.text((rng.randint(0, cw // 6), int(r * size * 1.15)), line, font=f, fill=ink())
        elif layout == 2:  # a menu: a list of choices with a cursor
            size = max(7, ch // rng.randint(10, 18))
            f = font(size)
            top = int(ch * rng.uniform(0.1, 0.4))
            cursor = rng.randint(0, 4)
            for r in range(rng.randint(3, 6)):
                prefix = "> " if r == cursor else "  "
                d.text((cw // 4, top + int(r * size * 1.4)), prefix + words(1, 3).title(), font=f, fill=ink())
        else:  # a dialogue box near the bottom of a plain screen
            y0 = int(ch * rng.uniform(0.55, 0.7))
            d.rectangle((cw // 20, y0, cw - cw // 20, ch - ch // 20), outline=ink(), width=max(1, ch // 120))
            size = max(6, ch // rng.randint(14, 22))
            f = font(size)
            for r in range(rng.randint(1, 3)):
                d.text((cw // 12, y0 + size // 2 + int(r * size * 1.3)), words(3, 8), font=f, fill=ink())
        if scale > 1:
            im = im.resize((cw * scale, ch * scale), Image.Resampling.NEAREST)
        longest = max(im.size)
        if longest > side:
            shrink = side / longest
            im = im.resize(
                (max(8, round(im.size[0] * shrink)), max(8, round(im.size[1] * shrink))), Image.Resampling.BILINEAR
            )
        yield np.asarray(im, dtype=np.uint8)
