"""`kibitz bench lines`: the rules that score a line without a judge, the pairwise judge, and a real stream
end to end (recorded from the real game, replayed through kibitz's companion and the baseline on the test model)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kibitz.bench import lines as L
from kibitz.bench import pairwise
from kibitz.brain.llm.base import LLMBackend, Message
from kibitz.core.persona import load_persona


def moment(**over: Any) -> L.Moment:
    event = {
        "type": "death",
        "priority": 8,
        "summary": "The player just died (2 lives left): ran into a Goomba; 57% of the way through World 1-1.",
        "t": 15.0,
        "id": 1,
        "facts": {"cause": "ran into a Goomba", "culprit": "Goomba", "level": "1-1", "progress": 0.57, "nth": 1},
    }
    base: dict[str, Any] = {
        "game": "smb",
        "split": "seen",
        "seed": 11,
        "t": 15.0,
        "event": event,
        "state": "Super Mario Bros., World 1-1; 3 lives left.",
        "precise": "Super Mario Bros., World 1-1; 3 lives left. Score 300; 12 coins; 380 seconds left on the clock.",
        "context": [],
        "frame": "smb-0000.png",
        "truth": {"world": 1, "stage": 1, "lives": 2, "score": 300, "coins": 12, "time": 380},
    }
    return L.Moment(**{**base, **over})


BUDDY = load_persona("buddy")


@pytest.mark.parametrize(
    ("line", "specific", "generic"),
    [
        ("Oof, that Goomba got you!", True, False),
        ("Goombas, man. They never learn.", True, False),
        ("World 1-1 bites back!", True, False),
        ("Two lives left, go easy.", True, False),
        ("57% of the way, so close!", True, False),
        ("Oh no, that's too bad!", False, True),
        ("Wow, that's impressive!", False, True),
        ("Hmm. Interesting.", False, False),
    ],
)
def test_specific_and_generic(line: str, specific: bool, generic: bool) -> None:
    verdict = L.score_line(line, moment(), BUDDY, [])
    assert (verdict["specific"], verdict["generic"]) == (specific, generic)


def test_point_of_view_numbers_repeats_copies_language_and_length() -> None:
    m = moment()
    assert L.score_line("I died again, ugh.", m, BUDDY, [])["wrong_pov"]
    assert L.score_line("The player ran into a Goomba.", m, BUDDY, [])["wrong_pov"]
    assert not L.score_line("You ran into a Goomba.", m, BUDDY, [])["wrong_pov"]
    assert L.score_line("That's your 7th death!", m, BUDDY, [])["invented"] == [7]
    assert L.score_line("Only 380 seconds left and 12 coins.", m, BUDDY, [])["invented"] == []
    assert L.score_line("Oof, that Goomba got you!", m, BUDDY, [(10.0, "Oof, that goomba got you.")])["repeated"]
    assert not L.score_line("Oof, that Goomba got you!", m, BUDDY, [(-700.0, "Oof, that Goomba got you!")])["repeated"]
    assert L.score_line("Oof, that goomba had your number. Again!", m, BUDDY, [])["copied"]
    chingu = load_persona("chingu")
    assert not L.score_line("Oh no, a Goomba!", m, chingu, [])["language_ok"]
    assert L.score_line("아이고, 굼바한테 당했네!", m, chingu, [])["language_ok"]
    long = " ".join(["word"] * (BUDDY.max_words + 1))
    assert not L.score_line(long, m, BUDDY, [])["length_ok"]
    assert L.distinct_2(["a b c", "a b d"]) == pytest.approx(3 / 4)


def test_summaries_count_failures_as_failures() -> None:
    m = moment()
    rows = [
        {"text": t, "first_token_s": 0.5, "score": L.score_line(t, m, BUDDY, [])}
        for t in ("Oof, that Goomba got you!", "", "Oh no!")
    ]
    f = L.summarise(rows)
    assert f["lines"] == 3 and f["failed"] == 1
    assert f["specific"]["k"] == 1 and f["specific"]["ci95"][0] < 1 / 3 < f["specific"]["ci95"][1]
    assert f["length_ok"]["k"] == 2  # an empty line is not within the length: it said nothing


class Picky(LLMBackend):
    """A judge that answers by a rule (at the edge of the process: only its replies matter here)."""

    name = "picky"

    def __init__(self, rule: str) -> None:
        self.rule = rule

    def stream(
        self, messages: list[Message], max_tokens: int, temperature: float, stop: list[str] | None = None
    ) -> Any:
        user = messages[-1]["content"]
        a = user.split("LINE A (data):")[1].split('"""')[1]
        if self.rule == "first":
            yield "A"
        elif self.rule == "goomba":
            yield "A" if "Goomba" in a else "B"
        else:
            yield "I cannot tell."


def test_pairwise_asks_both_orders_and_reports_agreement() -> None:
    pairs = [("Mario died.", "That Goomba again!", "The screen is blank.")] * 3
    result = pairwise.judge_pairs(pairs, {"first": Picky("first"), "goomba": Picky("goomba"), "mute": Picky("mute")})
    first, goomba, mute = (result["judges"][k] for k in ("first", "goomba", "mute"))
    assert first["tie"]["k"] == 3 and first["inconsistent"] == 3  # always "A": position bias, no preference
    assert goomba["first"]["k"] == 3 and goomba["inconsistent"] == 0
    assert mute["tie"]["k"] == 3 and mute["unparsed"] == 6
    assert result["agreement"]["same"] == 0 and result["agreement"]["judges"] == ["first", "goomba"]
    assert pairwise.parse("B, because it is specific") == "B" and pairwise.parse("Tie.") == "tie"
    assert pairwise.parse("Neither") is None


def test_a_real_stream_end_to_end(tmp_path: Path, smollm2_path: Path) -> None:
    """Super Mario Bros. for half a minute with the real session watching, then every event through kibitz's
    companion and the baseline on SmolLM2: every line scored, and the stream is reused, not recorded again."""
    from kibitz.brain.llm.llamacpp import LlamaCppBackend
    from kibitz.core.config import load_config

    moments = L.record("smb", 1, tmp_path / "rec", minutes=0.5)
    assert moments and moments[0].event["type"] == "game_start"
    deaths = [m for m in moments if m.event["type"] == "death"]
    assert deaths and deaths[0].event["facts"]["level"] == "1-1" and deaths[0].truth["dying"] is True
    assert (tmp_path / "rec" / deaths[0].frame).is_file()
    folder = tmp_path / "root" / "seed1" / "smb"
    folder.mkdir(parents=True)
    (folder / "stream.jsonl").write_text("".join(json.dumps(m.to_json()) + "\n" for m in moments))
    for m in moments:
        (folder / m.frame).write_bytes((tmp_path / "rec" / m.frame).read_bytes())
    (folder / "version.json").write_text(json.dumps(L._stamp("smb")))
    again = L.streams(1, ["smb"], tmp_path / "root")
    assert [m.to_json() for m in again] == [m.to_json() for m in moments]

    config = load_config(None, {"llm.model": str(smollm2_path)})
    backend = LlamaCppBackend(str(smollm2_path), n_ctx=2048, n_threads=1)
    try:
        rows = L.run_lines(again[:3], ["kibitz", "baseline"], backend, BUDDY, config, tmp_path / "root")
    finally:
        backend.close()
    assert [r["stack"] for r in rows] == ["kibitz"] * 3 + ["baseline"] * 3
    assert all(set(r["score"]) >= set(L.MEASURES) for r in rows)
    figures = L.tables(rows)
    assert figures["kibitz"]["lines"] == 3 and "kibitz/smb" in figures and "baseline/seen" in figures
