"""`kibitz bench voice` at smoke sizes on the real models (Whisper, Piper, Kokoro, eSpeak NG, SmolLM2-135M): the
records are filled, results.json is written, and a few sanity properties hold. The targets themselves are the
bench's to report, not these tests'."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kibitz.bench.voice import LINE, Figure, Sizes, bootstrap_ratio, char_edits, run_voice_bench, word_edits

pytestmark = pytest.mark.model


def test_error_counts_and_intervals() -> None:
    assert word_edits("Where is the key?", "where is the key") == (0, 4)
    assert word_edits("Where is the key?", "where the keys") == (2, 4)
    assert char_edits("ボスはどこ？", "ボスは どこ") == (0, 5)
    low, high = bootstrap_ratio([0, 1, 2, 0], [4, 4, 4, 4])
    assert 0.0 <= low <= 3 / 16 <= high <= 0.5
    assert Figure(0.3, 0.2, 0.4, 10, target=0.2).met is False and Figure(0.1, 0, 0.2, 10).met is None


def test_the_voice_bench_at_smoke_size(tmp_path: Path, smollm2_path: Path) -> None:
    sizes = Sizes(en=10, ko=3, ja=3, questions=2, trials=2, echo_trials=1, game_trials=1, tts_sentences=2)
    bench, path = run_voice_bench(
        ["wer", "latency", "bargein", "rtf", "ram"], "smollm2-135m", sizes, seed=1, out=tmp_path, max_tokens=24
    )
    assert path is not None and path.is_file()
    saved = json.loads(path.read_text(encoding="utf-8"))
    assert saved["model"] == "smollm2-135m" and saved["environment"]["cores"] and saved["sizes"]["questions"] == 2
    for part in ("wer", "latency", "bargein", "rtf", "ram"):
        assert saved[part], part

    # Word error rate: every set spoken and heard; Piper's English is well understood even at 10 sentences.
    assert bench.wer is not None
    sets = {w.name: w for w in bench.wer}
    assert set(sets) == {"en-piper", "en-espeak", "ko-espeak", "ja-kokoro"}
    piper = sets["en-piper"].wer
    assert piper.n == 10 and piper.value is not None and piper.value <= 0.3, [
        (i.text, i.heard) for i in sets["en-piper"].items
    ]
    assert piper.low is not None and piper.high is not None and piper.low <= piper.value <= piper.high
    assert sets["ja-kokoro"].cer is not None and sets["ja-kokoro"].cer.n == 3
    assert sets["ko-espeak"].cer is not None and sets["ko-espeak"].wer.n == 3

    # Latency: both questions heard and answered aloud, with the breakdown filled.
    lat = bench.latency
    assert lat is not None and lat.answered == 2, lat.asked
    for asked in lat.asked:
        assert asked.latency_s is not None and 0 < asked.latency_s < 15
        assert asked.asr_s and asked.first_token_s is not None and asked.tts_rtf and asked.heard
        assert asked.prompt_new is not None and asked.prompt_new >= 0  # the embedded model says what was left
    assert lat.p50.n == 2 and lat.p50.value is not None

    # Barge-in: playback stops in every trial, the line is cut to a prefix; game music is never a question.
    b = bench.bargein
    assert b is not None
    talked = [t for t in b.trials if t.kind == "bargein"]
    # (How often the companion's own echo stops it early is the bench's figure, not this test's: one of two may.)
    stopped = [t for t in talked if t.stopped]
    assert len(talked) == 2 and stopped, talked
    assert all(t.cut_is_prefix and t.cut_heard and len(t.cut_heard) < len(LINE) for t in stopped)
    assert b.stop_p95.value is not None and b.stop_p95.value < 1.0
    game = [t for t in b.trials if t.kind == "game"]
    assert len(game) == 1 and not any(t.questions for t in game), game
    assert b.game_false_questions.value == 0.0
    assert b.game_false_barge_ins.n == 1 and [t.kind for t in b.trials].count("game+echo") == 1

    # Real-time factors and memory.
    rtf = bench.rtf
    assert rtf is not None and rtf.asr.n == 10 and rtf.asr.value is not None and 0 < rtf.asr.value < 2
    assert set(rtf.tts) == {"piper", "kokoro", "espeak"} and all(f.value and f.n == 2 for f in rtf.tts.values())
    assert bench.ram is not None and bench.ram.rss.value is not None and 0.2 < bench.ram.rss.value < 3.5
    names = [name for name, _ in bench.rows()]
    assert "WER en-piper (headline)" in names and any("p95" in n for n in names)


def test_the_command_prints_its_table(tmp_path: Path) -> None:
    from kibitz.cli.bench import bench_app

    result = CliRunner().invoke(bench_app, ["voice", "--quick", "--parts", "wer,rtf", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "WER en-piper (headline)" in result.output and "ASR real-time factor" in result.output
    assert "met" in result.output
    saved = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert saved["parts"] == ["wer", "rtf"] and saved["sizes"]["en"] == 10 and saved["latency"] is None
    bad = CliRunner().invoke(bench_app, ["voice", "--parts", "wer,nope"])
    assert bad.exit_code != 0
