"""HUD reading from pixels: glyphs learnt on one emulator run, read on another, checked against RAM."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kibitz.core.errors import KibitzError
from kibitz.perception.assets import collect
from kibitz.perception.hud import (
    GlyphBook,
    HudReader,
    HudSmoother,
    RawRead,
    hud_spec_path,
    learn_glyphs,
    load_hud_spec,
    to_native,
)


@pytest.fixture(scope="module")
def smb_book() -> GlyphBook:
    spec = load_hud_spec(hud_spec_path("smb"))  # type: ignore[arg-type]
    book, report = learn_glyphs(spec, ((s.image, s.hud, s.scene) for s in collect("smb", 0, 60.0, every=6)))
    assert report.samples > 500
    return book


def test_smb_hud_read_on_an_unseen_run_matches_ram(smb_book: GlyphBook) -> None:
    spec = load_hud_spec(hud_spec_path("smb"))  # type: ignore[arg-type]
    reader, smoother = HudReader(spec, smb_book), HudSmoother(spec)
    shown = exact = 0
    prev: dict[str, object] = {}
    for s in collect("smb", 1, 40.0, every=2):
        values = smoother.update(s.t, reader.read(s.image))
        if s.scene != "gameplay":
            continue
        for name in ("score", "coins", "world", "stage"):
            shown += 1
            exact += name in values and values[name].value in (s.hud[name], prev.get(name))
        prev = s.hud
    assert shown > 1000
    assert exact / shown >= 0.95


def test_scaled_screen_capture_reads_the_same(smb_book: GlyphBook) -> None:
    """A window shown 3× bigger (as on a desktop) is scaled back to the native grid and read the same."""
    spec = load_hud_spec(hud_spec_path("smb"))  # type: ignore[arg-type]
    reader = HudReader(spec, smb_book)
    sample = next(s for s in collect("smb", 1, 30.0, every=30) if s.scene == "gameplay" and s.t > 10)
    big = sample.image.repeat(3, axis=0).repeat(3, axis=1)
    assert reader.read(big)["score"] == reader.read(sample.image)["score"]
    assert reader.read(big)["world"].value == sample.hud["world"]


def test_hud_that_disappears_and_garbage_give_no_wild_values(smb_book: GlyphBook) -> None:
    spec = load_hud_spec(hud_spec_path("smb"))  # type: ignore[arg-type]
    reader, smoother = HudReader(spec, smb_book), HudSmoother(spec)
    sample = next(s for s in collect("smb", 1, 30.0, every=30) if s.scene == "gameplay" and s.t > 10)
    first = smoother.update(1.0, reader.read(sample.image))
    assert first["score"].value == sample.hud["score"]
    black = np.zeros_like(sample.image)
    assert all(r.value is None for r in reader.read(black).values())
    held = smoother.update(1.1, reader.read(black))
    assert held["score"].value == first["score"].value and held["score"].confidence < 1.0
    noise = np.random.default_rng(0).integers(0, 256, sample.image.shape, dtype=np.uint8)
    after = smoother.update(1.2, reader.read(noise))
    assert after["score"].value == first["score"].value  # noise never becomes a number


def test_smoother_holds_implausible_jumps_until_confirmed() -> None:
    spec = load_hud_spec(hud_spec_path("smb"))  # type: ignore[arg-type]
    sm = HudSmoother(spec)
    assert sm.update(0.0, {"score": RawRead(1200)})["score"].value == 1200
    assert sm.update(0.02, {"score": RawRead(900000)})["score"].value == 1200  # +898,800 in 20 ms: not yet
    assert sm.update(0.04, {"score": RawRead(1200)})["score"].value == 1200
    assert sm.update(0.06, {"score": RawRead(0)})["score"].value == 1200  # a new game: must be read twice
    assert sm.update(0.08, {"score": RawRead(0)})["score"].value == 0
    assert sm.update(0.10, {"coins": RawRead(250)}).get("coins") is None  # out of range, never accepted
    assert sm.rejections


def test_bad_frames_and_bad_hud_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        to_native(np.zeros((240, 256), np.uint8), (256, 240))
    bad = tmp_path / "x.hud.yaml"
    bad.write_text("game: x\nsize: [10, 10]\nfields:\n  score: {box: [0, 0, 5, 5], colour: red}\n")
    with pytest.raises(KibitzError, match="colour"):
        load_hud_spec(bad)
    junk = tmp_path / "g.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(KibitzError, match="kibitz games learn"):
        GlyphBook.load(junk)


def test_glyph_book_round_trip(smb_book: GlyphBook, tmp_path: Path) -> None:
    smb_book.save(tmp_path / "smb.npz")
    again = GlyphBook.load(tmp_path / "smb.npz")
    assert again.size == smb_book.size
    assert set(again.glyphs["default"]) == set("0123456789")
