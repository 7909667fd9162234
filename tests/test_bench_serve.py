"""`kibitz bench serve` end to end, small: `kibitz serve` in its own process, players over real WebSockets, the edge
model server; the figures it prints must be computed from what really crossed the wire."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi", reason="install kibitz[serve] for the web server")
pytest.importorskip("websockets", reason="install kibitz[serve] for the web server")


def test_the_load_part_checks_every_line() -> None:
    from kibitz.bench.serve import load_bench

    figures = load_bench(sessions=3, seconds=16.0).figures()
    assert figures["connected"] == 3 and figures["errors"] == 0, figures["error_samples"]
    assert figures["questions_sent"] >= 3 and figures["questions_answered"] == figures["questions_sent"]
    assert figures["dropped"] == figures["duplicated"] == figures["crossed"] == 0
    assert figures["lines"] >= figures["questions_answered"] and figures["messages_received"] > figures["lines"]
    assert 0 < figures["server_added_ms_p50"] <= figures["question_first_word_ms_p95"] + 1e-6
    assert figures["rss_mb_end"] > 0


def test_the_capacity_part_times_the_card_to_its_line() -> None:
    pytest.importorskip("ale_py", reason="install kibitz[atari] for Atari games")
    pytest.importorskip("rapidocr", reason="install kibitz[vision] for OCR")
    from kibitz.bench.serve import capacity_bench

    (level,) = capacity_bench(counts=(1,), seconds=12.0)
    assert level.sessions == 1 and level.cards == 1 and level.frames_sent >= 20
    assert level.missed == 0 and 0 < level.delays[0] < 10
