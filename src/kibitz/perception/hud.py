"""Read a game's HUD numbers (score, lives, time, coins...) from pixels with glyph templates.

Pixel fonts (NES, Atari, many indie games) are drawn from a fixed set of glyphs, so instead of general OCR
(which reads an NES 0 as "õ" or "8") kibitz learns each glyph's exact bitmap from a few frames whose true
values are known and matches them: exact, and well under a millisecond a field.

A game's HUD is data: `games/data/<game>.hud.yaml` declares each field's box (in the game's native
resolution), how its glyphs are laid out (fixed cells or separated by blank columns), which scenes show it,
and what values are plausible. The glyph book is learnt (`kibitz games learn`) and kept in the user's data
folder, never shipped: it is derived from the game's own graphics.

Raw readings then go through `HudSmoother`: values outside their range, or jumping further than the game
allows in the time elapsed, are held back until they repeat; a field that vanishes (menus, cut-scenes)
keeps its last value, marked stale. Every rejection is logged with its reason.
"""

from __future__ import annotations

import logging
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kibitz.core.errors import KibitzError
from kibitz.core.records import Provenance, Reading, RGBImage

log = logging.getLogger("kibitz.hud")

DATA_DIR = Path(__file__).resolve().parent.parent / "games" / "data"
Mask = npt.NDArray[np.bool_]
BLANK = " "


class FieldSpec(BaseModel):
    """One numeric HUD field."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    box: tuple[int, int, int, int]
    """x, y, width, height in the game's native resolution."""
    method: Literal["glyphs", "ocr"] = "glyphs"
    """glyphs: learnt bitmaps (pixel fonts, exact); ocr: text recognition on the crop (smooth fonts)."""
    upscale: int = Field(1, ge=1, le=8)
    """ocr: enlarge the crop this many times first (small HUD text reads better bigger)."""
    cells: int | None = None
    """Fixed-pitch font: the box holds this many equal-width cells. None: glyphs are split at blank columns."""
    font: str = "default"
    ink: tuple[int, int, int] | None = None
    """The glyphs' colour; None: whatever differs from the box's most common (background) colour."""
    ink_tolerance: int = 60
    min: int = 0
    max: int = 999_999_999
    max_rise_per_s: float | None = None
    """How fast the value can plausibly grow; a bigger jump must be read again before it is believed."""
    max_fall_per_s: float | None = None
    wrap: bool = False
    """The value wraps to min after max (e.g. coins 99 → 00)."""
    scenes: tuple[str, ...] | None = None
    """Scenes that show this field (None: all); elsewhere it is not read and keeps its last value."""
    confirm: int = 2
    """Frames in a row an implausible value must be read before it is accepted."""


class HudSpec(BaseModel):
    """Where a game's HUD fields are."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    game: str
    size: tuple[int, int]
    """width, height of the game's native frame; other frame sizes are scaled to it."""
    fields: dict[str, FieldSpec] = Field(min_length=1)

    @property
    def fonts(self) -> set[str]:
        return {f.font for f in self.fields.values()}


def hud_spec_path(game_id: str, data_dirs: Iterable[Path] = ()) -> Path | None:
    """The HUD file of a game: a user's games folder first, then the built-in data."""
    for folder in (*data_dirs, DATA_DIR):
        for path in (folder / f"{game_id}.hud.yaml", folder / game_id / "hud.yaml"):
            if path.is_file():
                return path
    return None


def load_hud_spec(path: Path) -> HudSpec:
    """Parse a HUD file, with a one-sentence error naming the file and the problem."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        return HudSpec.model_validate(raw)
    except OSError as exc:
        raise KibitzError(f"Cannot read the HUD file {path}: {exc.strerror}.") from exc
    except yaml.YAMLError as exc:
        raise KibitzError(f"The HUD file {path} is not valid YAML: {exc}.") from exc
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise KibitzError(f"The HUD file {path} is wrong at '{where}': {err['msg']}.") from exc


def to_native(image: RGBImage, size: tuple[int, int]) -> RGBImage:
    """The frame at the game's native resolution (nearest-neighbour, so pixel fonts stay exact): each native pixel
    is taken from the middle of the block it was scaled to, so any scale, integer or not, gives it back."""
    w, h = size
    if image.ndim != 3 or image.shape[2] < 3:
        raise ValueError(f"expected an H×W×3 image, got shape {image.shape}")
    if image.shape[0] == h and image.shape[1] == w:
        return image[:, :, :3]
    ys = ((np.arange(h) + 0.5) * image.shape[0] / h).astype(np.intp).clip(0, image.shape[0] - 1)
    xs = ((np.arange(w) + 0.5) * image.shape[1] / w).astype(np.intp).clip(0, image.shape[1] - 1)
    return image[ys][:, xs, :3]


def ink_mask(crop: RGBImage, ink: tuple[int, int, int] | None, tolerance: int) -> Mask:
    """Which pixels of a HUD crop belong to glyphs."""
    pixels = crop.reshape(-1, 3).astype(np.int16)
    if ink is None:
        # The background is the most common colour on the box's edge (glyphs may fill most of the inside).
        edge = np.concatenate([crop[0], crop[-1], crop[:, 0], crop[:, -1]]).astype(np.int32)
        packed = (edge[:, 0] << 16) | (edge[:, 1] << 8) | edge[:, 2]
        values, counts = np.unique(packed, return_counts=True)
        bg = int(values[counts.argmax()])
        ref = np.array([(bg >> 16) & 255, (bg >> 8) & 255, bg & 255], dtype=np.int16)
        mask = np.abs(pixels - ref).sum(axis=1) > tolerance
    else:
        mask = np.abs(pixels - np.array(ink, dtype=np.int16)).sum(axis=1) <= tolerance
    return mask.reshape(crop.shape[:2])


def split_glyphs(mask: Mask, cells: int | None) -> list[Mask | None]:
    """The glyph masks of a field, left to right; None for a blank cell (fixed-pitch fonts only)."""
    if cells:
        width = mask.shape[1] // cells
        out: list[Mask | None] = []
        for i in range(cells):
            cell = mask[:, i * width : (i + 1) * width]
            out.append(cell if cell.any() else None)
        return out
    cols: list[bool] = np.asarray(mask.any(axis=0)).tolist()
    glyphs: list[Mask | None] = []
    start: int | None = None
    for x, on in enumerate([*cols, False]):
        if on and start is None:
            start = x
        elif not on and start is not None:
            glyphs.append(mask[:, start:x])
            start = None
    return glyphs


@dataclass
class GlyphBook:
    """Learnt glyph bitmaps: font → character → the distinct masks seen for it."""

    glyphs: dict[str, dict[str, list[Mask]]] = field(default_factory=dict)

    def match(self, font: str, mask: Mask) -> tuple[str | None, float]:
        """The character a glyph shows and its distance (share of differing pixels); None if nothing is close."""
        best, best_d, second_d = None, 1.0, 1.0
        for char, masks in self.glyphs.get(font, {}).items():
            for tpl in masks:
                if tpl.shape != mask.shape:
                    continue
                d = float(np.count_nonzero(tpl != mask)) / mask.size
                if d < best_d:
                    if best != char:
                        second_d = best_d
                    best, best_d = char, d
                elif d < second_d and char != best:
                    second_d = d
        if best is None or best_d > 0.12 or (second_d - best_d) < 0.02:
            return None, best_d
        return best, best_d

    def save(self, path: Path) -> None:
        arrays: dict[str, Any] = {}
        for font, chars in self.glyphs.items():
            for char, masks in chars.items():
                for i, m in enumerate(masks):
                    arrays[f"{font}\x1f{ord(char)}\x1f{i}"] = m
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, **arrays)
        tmp.replace(path)  # atomic: a killed process never leaves half a glyph book

    @classmethod
    def load(cls, path: Path) -> GlyphBook:
        try:
            data = np.load(path)
        except (OSError, ValueError) as exc:
            raise KibitzError(
                f"The glyph book {path} is unreadable ({exc}); rebuild it with `kibitz games learn`."
            ) from exc
        book = cls()
        for key in sorted(data.files):
            font, code, _ = key.split("\x1f")
            book.glyphs.setdefault(font, {}).setdefault(chr(int(code)), []).append(data[key].astype(bool))
        return book

    @property
    def size(self) -> int:
        return sum(len(m) for chars in self.glyphs.values() for m in chars.values())


@dataclass(frozen=True, slots=True)
class RawRead:
    """One field as read from one frame: a value, or why there is none."""

    value: int | None
    text: str = ""
    reason: str = ""


class HudReader:
    """Reads every HUD field of a frame with a glyph book."""

    def __init__(self, spec: HudSpec, book: GlyphBook) -> None:
        self.spec = spec
        self.book = book
        self.ocr: Any = None

    def glyph_masks(self, native: RGBImage, f: FieldSpec) -> list[Mask | None]:
        x, y, w, h = f.box
        crop = native[y : y + h, x : x + w]
        return split_glyphs(ink_mask(crop, f.ink, f.ink_tolerance), f.cells)

    def read_field(self, native: RGBImage, f: FieldSpec) -> RawRead:
        if f.method == "ocr":
            return self._read_ocr(native, f)
        glyphs = self.glyph_masks(native, f)
        chars: list[str] = []
        for g in glyphs:
            if g is None:
                chars.append(BLANK)
                continue
            char, dist = self.book.match(f.font, g)
            if char is None:
                return RawRead(None, "".join(chars) + "?", f"unknown glyph (closest differs in {dist:.0%} of pixels)")
            chars.append(char)
        text = "".join(chars).strip()
        if not text:
            return RawRead(None, "", "not shown")
        if not text.lstrip("-").isdigit():
            return RawRead(None, text, f"not a number: {text!r}")
        return RawRead(int(text), text)

    def _read_ocr(self, native: RGBImage, f: FieldSpec) -> RawRead:
        """A smooth-font field: recognition only (no detection) on the known box, ~15 ms; digits kept."""
        if self.ocr is None:
            from kibitz.perception.ocr import OCREngine

            self.ocr = OCREngine()
        x, y, w, h = f.box
        crop = native[y : y + h, x : x + w]
        if f.upscale > 1:
            crop = crop.repeat(f.upscale, axis=0).repeat(f.upscale, axis=1)
        text, score = self.ocr.recognize(crop)
        if not text:
            return RawRead(None, "", "not shown" if score == 0.0 else f"unsure OCR reading (score {score:.2f})")
        digits = re.sub(r"(?<=\d)[,.'\s](?=\d{3})", "", text)  # 12,345 / 12.345 / 12 345
        found = re.findall(r"-?\d+", digits)
        if len(found) != 1:
            return RawRead(None, text, f"not one number: {text!r}")
        return RawRead(int(found[0]), text)

    def read(self, image: RGBImage, scene: str | None = None) -> dict[str, RawRead]:
        """Raw readings of every field shown in this scene (scene None: all fields)."""
        native = to_native(image, self.spec.size)
        out: dict[str, RawRead] = {}
        for name, f in self.spec.fields.items():
            if scene is not None and f.scenes is not None and scene not in f.scenes:
                continue
            out[name] = self.read_field(native, f)
        return out


@dataclass
class _FieldState:
    value: int | None = None
    t: float = 0.0
    candidate: int | None = None
    candidate_count: int = 0


class HudSmoother:
    """Turns raw readings into believable values: range checks, plausible steps, confirmation, holding."""

    def __init__(self, spec: HudSpec) -> None:
        self.spec = spec
        self.state: dict[str, _FieldState] = defaultdict(_FieldState)
        self.rejections: Counter[str] = Counter()

    def _plausible(self, f: FieldSpec, old: int, new: int, dt: float) -> bool:
        delta = new - old
        if f.wrap and delta < 0 and old > f.max * 0.8 and new < f.max * 0.2:
            return True
        dt = max(dt, 1 / 60)
        if f.max_rise_per_s is not None and delta > f.max_rise_per_s * dt + 1:
            return False
        return not (f.max_fall_per_s is not None and -delta > f.max_fall_per_s * dt + 1)

    def update(self, t: float, raw: dict[str, RawRead]) -> dict[str, Reading]:
        out: dict[str, Reading] = {}
        for name, f in self.spec.fields.items():
            st = self.state[name]
            r = raw.get(name)
            if r is not None and r.value is not None:
                v = r.value
                if not f.min <= v <= f.max:
                    self._reject(name, f"{v} is outside {f.min}..{f.max}")
                elif st.value is None or v == st.value or self._plausible(f, st.value, v, t - st.t):
                    st.value, st.t, st.candidate, st.candidate_count = v, t, None, 0
                else:
                    st.candidate_count = st.candidate_count + 1 if v == st.candidate else 1
                    st.candidate = v
                    if st.candidate_count >= f.confirm:
                        st.value, st.t, st.candidate, st.candidate_count = v, t, None, 0
                    else:
                        self._reject(name, f"jump {st.value} → {v} in {t - st.t:.2f} s not yet confirmed")
            elif r is not None and r.reason and r.reason != "not shown":
                self._reject(name, r.reason)
            if st.value is not None:
                fresh = r is not None and r.value == st.value
                out[name] = Reading(st.value, source=Provenance.OCR, confidence=1.0 if fresh else 0.5)
        return out

    def _reject(self, name: str, reason: str) -> None:
        key = f"{name}: {reason.split(' ')[0]}"
        self.rejections[key] += 1
        if self.rejections[key] in (1, 10, 100, 1000):
            log.info("HUD %s reading ignored: %s (%d so far)", name, reason, self.rejections[key])


@dataclass
class LearnReport:
    samples: int = 0
    glyphs: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    conflicts: int = 0


def learn_glyphs(
    spec: HudSpec, samples: Iterable[tuple[RGBImage, dict[str, Any], str | None]], max_variants: int = 3
) -> tuple[GlyphBook, LearnReport]:
    """Learn glyph bitmaps from frames whose true HUD values (and scene) are known.

    Each glyph is labelled with the true value's digits, right-aligned and zero-padded to the number of glyphs
    seen (so "0400" and "400" both work without declaring a format). The most frequent bitmaps of each
    character are kept; a bitmap seen for two different characters is dropped as ambiguous.
    """
    votes: dict[tuple[str, str], Counter[bytes]] = defaultdict(Counter)
    shapes: dict[bytes, tuple[int, int]] = {}
    report = LearnReport()
    for image, truth, scene in samples:
        report.samples += 1
        native = to_native(image, spec.size)
        reader = HudReader(spec, GlyphBook())
        for name, f in spec.fields.items():
            if f.method != "glyphs" or name not in truth or truth[name] is None:
                continue
            if f.scenes is not None and scene not in f.scenes:
                continue
            glyphs = [g for g in reader.glyph_masks(native, f) if g is not None]
            digits = str(int(truth[name]))
            if not glyphs or len(glyphs) < len(digits):
                report.skipped[f"{name}: {len(glyphs)} glyphs for {digits}"] += 1
                continue
            text = digits.rjust(len(glyphs), "0")
            for char, g in zip(text, glyphs, strict=True):
                key = g.tobytes()
                shapes[key] = g.shape
                votes[(f.font, char)][key] += 1
    owner: dict[tuple[str, bytes], Counter[str]] = defaultdict(Counter)
    for (font, char), counter in votes.items():
        for key, n in counter.items():
            owner[(font, key)][char] += n
    book = GlyphBook()
    for (font, char), counter in votes.items():
        for key, n in counter.most_common(max_variants):
            chars = owner[(font, key)]
            if chars.most_common(1)[0][0] != char or n < 2:
                report.conflicts += 1
                continue
            mask = np.frombuffer(key, dtype=bool).reshape(shapes[key]).copy()
            book.glyphs.setdefault(font, {}).setdefault(char, []).append(mask)
    report.glyphs = book.size
    return book, report
