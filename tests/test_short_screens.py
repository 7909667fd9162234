"""The short-screens bench part: real Atari play scaled to a 720p capture, brief cards, the product's perceiver."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kibitz.bench.shortscreens import CARDS, letterbox, short_screen_bench


def test_letterbox_keeps_the_shape_and_centres_the_game() -> None:
    frame = np.full((210, 160, 3), 200, np.uint8)
    out = letterbox(frame)
    assert out.shape == (720, 1280, 3)
    cols = np.flatnonzero(out[360, :, 0])
    assert out[:, : cols[0]].max() == 0 and out[:, cols[-1] + 1 :].max() == 0  # black bars either side
    assert abs(cols[0] - (1280 - cols[-1] - 1)) <= 1  # centred
    assert cols[-1] - cols[0] + 1 == round(160 * 720 / 210)  # scaled to the full height, shape kept


def test_cards_are_shown_and_read_through_the_real_perceiver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("ale_py", reason="install kibitz[bench] for Atari games")
    pytest.importorskip("rapidocr", reason="install kibitz[vision] for OCR")
    from kibitz.core.config import PerceptionConfig
    from kibitz.perception.classifier import EMBEDDERS
    from kibitz.perception.ocr import OCREngine
    from kibitz.perception.pixels import PixelPerceiver

    monkeypatch.setenv("KIBITZ_HOME", str(tmp_path))
    embedder, engine = EMBEDDERS.get("thumbnail")(), OCREngine()
    perceivers: list[PixelPerceiver] = []

    def factory() -> PixelPerceiver:
        perceivers.append(PixelPerceiver(None, PerceptionConfig(), embedder=embedder, bank=None, ocr_engine=engine))
        return perceivers[-1]

    found = short_screen_bench(factory, ("boxing",), seconds_per_game=8.0, gap_s=(2.0, 3.0), fps=30.0)
    assert found.frames == 240 and len(perceivers) == 1
    assert 1 <= len(found.cards) <= 3 and {c.kind for c in found.cards} <= {"full", "banner"}
    assert all((c.phrase, c.scene) in CARDS for c in found.cards)
    assert found.cards[0].kind == "full"
    # A full-screen card is a cut: OCR was set off by it (its outcome depends on the machine's speed; the bench
    # reports it, this test does not time it).
    assert found.ocr["cut_reads"] >= 1 and found.ocr["reads"] >= 2 and found.ocr["seconds"] > 0
    assert found.ocr_ms_per_frame > 0 and len(found.loop_ms) == 240
    assert perceivers[0].ocr is not None and not perceivers[0].ocr.thread.is_alive()  # closed after its stream
