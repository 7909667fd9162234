"""Short screens and what reading text costs: a 720p stream of real play with brief cards, watched in real time.

A death card, a level card or a "PAUSED" banner may be on screen for half a second. This part plays Atari games
kibitz has no assets for (an open-set split, random presses: settings were chosen on *dev*, *test* is scored),
scales each frame to a 1280×720 capture (letterboxed, as a 4:3 game in a 16:9 window), and shows a card every few
seconds for `card_s` seconds, inside the game's picture: either a full card (the phrase on black) or a banner drawn
over the play. The stream runs through the product's own `PixelPerceiver` (no game named, its OCR thread and schedule
as configured) at 60 frames a second of wall time, so the OCR thread competes for the CPU as it
does live.

Scored per card: *read* when, while the card is shown or up to `grace_s` after, the screen text perception gives
holds every word of the card's phrase and was read off one of the card's frames; *scene* when the observation's
scene is the card's while it is shown (the truth is the phrase drawn, listed here, not the stack's word file).
Cost: OCR seconds spent (on its thread) per frame of the stream, per read, and per read set off by a cut.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kibitz.bench.perception import atari_stream
from kibitz.core.records import Frame, RGBImage

CARDS = (
    ("GAME OVER", "game_over"),
    ("YOU DIED", "death"),
    ("PAUSED", "pause"),
    ("NOW LOADING", "loading"),
    ("PRESS START", "menu"),
)
"""The phrases drawn and the scene each card is (its truth)."""
SIZE = (1280, 720)


@dataclass
class CardResult:
    phrase: str
    scene: str
    kind: str
    """"full" (the phrase on black) or "banner" (drawn over the play)."""
    t: float
    read: bool = False
    scene_named: bool = False


@dataclass
class ShortScreenResult:
    games: tuple[str, ...]
    card_s: float
    frames: int = 0
    seconds: float = 0.0
    cards: list[CardResult] = field(default_factory=list)
    ocr: dict[str, float] = field(default_factory=dict)
    loop_ms: list[float] = field(default_factory=list)

    def rate(self, key: str, kind: str | None = None) -> tuple[int, int]:
        chosen = [c for c in self.cards if kind is None or c.kind == kind]
        return sum(getattr(c, key) for c in chosen), len(chosen)

    @property
    def ocr_ms_per_frame(self) -> float:
        return 1000 * self.ocr.get("seconds", 0.0) / self.frames if self.frames else float("nan")


def picture_box(native: tuple[int, int], size: tuple[int, int] = SIZE) -> tuple[int, int, int, int]:
    """Where a native (height, width) frame lands in the capture: x, y, width, height (scaled, shape kept)."""
    w, h = size
    ih, iw = native
    scale = min(w / iw, h / ih)
    nw, nh = round(iw * scale), round(ih * scale)
    return (w - nw) // 2, (h - nh) // 2, nw, nh


def letterbox(image: RGBImage, size: tuple[int, int] = SIZE) -> RGBImage:
    """The frame scaled (nearest, keeping its shape) into the middle of a black `size` capture."""
    import cv2

    x, y, nw, nh = picture_box(image.shape[:2], size)
    out = np.zeros((size[1], size[0], 3), np.uint8)
    out[y : y + nh, x : x + nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_NEAREST)
    return out


def _phrase_layer(phrase: str, rng: random.Random, area: tuple[int, int, int, int]) -> tuple[RGBImage, np.ndarray]:
    """The phrase drawn big in a random ink and font size inside the game's picture (`area`: x, y, width, height; a
    game draws its cards in its own picture, never in the window's bars), and its mask (where a banner covers it)."""
    from PIL import Image, ImageDraw, ImageFont

    from kibitz.perception.screens import _fonts

    fonts = _fonts()
    path = str(rng.choice(fonts)) if fonts else None
    ax, ay, aw, ah = area
    layer = Image.new("RGB", SIZE, (0, 0, 0))
    draw = ImageDraw.Draw(layer)
    size = rng.choice((56, 72, 96))
    while True:  # as big as chosen, or as big as fits the picture with a margin
        font = ImageFont.truetype(path, size) if path else ImageFont.load_default(size)
        x0, y0, x1, y1 = draw.textbbox((0, 0), phrase, font=font)
        if x1 - x0 <= 0.85 * aw or size <= 24:
            break
        size -= 4
    x, y = ax + (aw - (x1 - x0)) // 2, ay + int(ah * rng.uniform(0.3, 0.55))
    pad = 24
    mask = Image.new("L", SIZE, 0)
    ImageDraw.Draw(mask).rectangle(
        (max(ax, x - pad), y - pad, min(ax + aw - 1, x + (x1 - x0) + pad), y + (y1 - y0) + pad + 8), fill=255
    )
    ink = rng.choice(((255, 255, 255), (255, 80, 80), (255, 230, 60), (120, 220, 255)))
    draw.text((x - x0, y - y0), phrase, font=font, fill=ink)
    return np.asarray(layer), np.asarray(mask) > 0


def short_screen_bench(
    perceiver_factory: Callable[[], Any],
    games: tuple[str, ...],
    seconds_per_game: float = 30.0,
    card_s: float = 0.5,
    gap_s: tuple[float, float] = (3.0, 6.0),
    grace_s: float = 1.0,
    seed: int = 3,
    fps: float = 60.0,
    progress: Callable[[str], None] | None = None,
) -> ShortScreenResult:
    """Each game's stream through a fresh perceiver from `perceiver_factory`, paced at `fps` of wall time."""
    rng = random.Random(seed)
    result = ShortScreenResult(games, card_s)
    for g_index, game in enumerate(games):
        if progress:
            progress(f"{game}: {seconds_per_game:.0f} s of 720p play with a {card_s} s card every few seconds")
        perceiver = perceiver_factory()
        stream = atari_stream(game, seed + g_index)
        first = next(stream)
        area = picture_box(first.shape[:2])
        starts, at = [], rng.uniform(*gap_s)
        while at + card_s + grace_s < seconds_per_game:
            starts.append(at)
            at += card_s + rng.uniform(*gap_s)
        cards = []
        for k, start in enumerate(starts):
            phrase, scene = rng.choice(CARDS)
            layer, mask = _phrase_layer(phrase, rng, area)
            cards.append((CardResult(phrase, scene, "full" if k % 2 == 0 else "banner", start), layer, mask))
        words = {id(c): set(c.phrase.lower().split()) for c, _, _ in cards}
        n = int(seconds_per_game * fps)
        clock = time.perf_counter()
        try:
            for i in range(n):
                t = i / fps
                image = letterbox(next(stream))
                shown = next(((c, layer, m) for c, layer, m in cards if c.t <= t < c.t + card_s), None)
                if shown is not None:
                    card, layer, mask = shown
                    image = layer.copy() if card.kind == "full" else np.where(mask[..., None], layer, image)
                t0 = time.perf_counter()
                obs = perceiver.perceive(Frame(t=t, image=image, source="bench", index=i))
                result.loop_ms.append((time.perf_counter() - t0) * 1000)
                said = {w for line in obs.text for w in line.lower().split()}
                read_at = perceiver.text_read_at
                for card, _, _ in cards:
                    if card.t <= t < card.t + card_s + grace_s:
                        from_card = card.t <= read_at < card.t + card_s  # text read off a frame of this card
                        card.read = card.read or (from_card and words[id(card)] <= said)
                        card.scene_named = card.scene_named or (t < card.t + card_s and obs.scene == card.scene)
                time.sleep(max(0.0, clock + (i + 1) / fps - time.perf_counter()))
        finally:
            perceiver.close()
        work = perceiver.ocr_work
        for key in ("reads", "seconds", "cut_reads", "cut_seconds"):
            result.ocr[key] = result.ocr.get(key, 0.0) + float(getattr(work, key))
        result.frames += n
        result.seconds += seconds_per_game
        result.cards += [c for c, _, _ in cards]
    return result
