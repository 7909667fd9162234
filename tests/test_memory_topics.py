"""The words that name a topic in a question (memory/data/topics.yaml) and the newest-of-a-family rule, on
phrasings that are not the benchmark's, in English and Korean; and their effect on a real store's ranking."""

from __future__ import annotations

from pathlib import Path

import pytest

from kibitz.memory import topics

TOPICS = [
    "name",
    "work",
    "pets",
    "home",
    "level 1",
    "level 12",
    "level 2-2",
    "nemesis: bowser",
    "session 2026-02-01 20:00",
    "talk: spoilers",
    "general",
]


def _named(question: str) -> set[str]:
    return {t for t, hit in zip(TOPICS, topics.named(question, TOPICS), strict=True) if hit}


@pytest.mark.parametrize(
    ("question", "expect"),
    [
        ("Hey, what was my job at the hospital?", {"work"}),
        ("우리 강아지 산책 언제 시켰더라?", {"pets"}),
        ("Where's my home town, do you know?", {"home"}),
        ("Tips for level 12?", {"level 12"}),  # not "level 1"
        ("2-2에서 또 죽었어", {"level 2-2"}),  # a Korean particle may follow a level
        ("level 2-20 is hard", set()),
        ("Bowser again!", {"nemesis: bowser"}),
        ("I keep dying here, why?", {"nemesis: bowser"}),
        ("What did we do last time?", {"session 2026-02-01 20:00"}),
        ("저번에 스포일러 했잖아", {"session 2026-02-01 20:00", "talk: spoilers"}),
        ("petrol prices, cattle and homework", set()),  # whole words only
        ("general tips please", set()),
    ],
)
def test_what_a_question_names(question: str, expect: set[str]) -> None:
    assert _named(question) == expect


def test_latest_asks_for_the_newest_of_a_family() -> None:
    asked = topics.latest("What happened the last time I played?", TOPICS)
    assert [t for t, hit in zip(TOPICS, asked, strict=True) if hit] == ["session 2026-02-01 20:00"]
    assert not any(topics.latest("How many sessions have I played?", TOPICS))


def test_the_vocabulary_rejects_unknown_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kibitz.core.errors import KibitzError

    bad = tmp_path / "data"
    bad.mkdir()
    (bad / "topics.yaml").write_text("- topic: name\n  wrods: [name]\n", encoding="utf-8")
    monkeypatch.setattr(topics.resources, "files", lambda _: tmp_path)
    topics.vocabulary.cache_clear()
    topics._entry.cache_clear()
    try:
        with pytest.raises(KibitzError, match="wrods"):
            topics.vocabulary()
    finally:
        monkeypatch.undo()
        topics.vocabulary.cache_clear()
        topics._entry.cache_clear()
