"""kibitz bench: the dataset from real games, the tasks' scoring, the runner's cache and failures, the report.

The LLM is the fake OpenAI-compatible server (the process edge); games, OCR, perception and SQLite are real.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from fake_openai import FakeOpenAI
from kibitz.bench.dataset import Dataset, build
from kibitz.bench.judge import JudgeSpec, agreement, parse_grades, quadratic_kappa
from kibitz.bench.recorders import RECORDERS, Recorder
from kibitz.bench.stacks import Stack, events_in_line, parse_recognition
from kibitz.bench.tasks import (
    MATCH_AFTER_S,
    Advice,
    Events,
    Metric,
    Questions,
    Recognition,
    aggregate,
    match_events,
    mentions,
    reaction_latencies,
)
from kibitz.cli.main import app
from kibitz.core.errors import KibitzError
from kibitz.perception.labels import read_labelled
from kibitz.perception.ocr import TextBox

pytest.importorskip("ale_py")


class BrokenRecorder(Recorder):
    game = "broken_game"
    title = "Broken"
    genre = "test"
    fps = 1.0

    def check_installed(self) -> None:
        raise KibitzError("Broken needs the brokengame package: pip install brokengame.")

    def frames(self, seed: int, seconds: float) -> Iterator[Any]:
        raise AssertionError("never played")


if "broken_game" not in RECORDERS:
    RECORDERS.register("broken_game", BrokenRecorder, "a game whose package is missing")


@pytest.fixture(scope="module")
def learnt_vision(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What `kibitz games learn breakout` learns, in the module's own home (never the user's cache)."""
    from kibitz.perception.assets import learn_builtin
    from kibitz.perception.classifier import EMBEDDERS

    home = tmp_path_factory.mktemp("bench-learnt")
    mp = pytest.MonkeyPatch()
    mp.setenv("KIBITZ_HOME", str(home))
    try:
        learn_builtin(EMBEDDERS.get("efficientnet-lite0")(), ["breakout"])
    finally:
        mp.undo()
    return home / "vision"


@pytest.fixture(autouse=True)
def _learnt(kibitz_home: Path, learnt_vision: Path) -> None:
    (kibitz_home / "vision").symlink_to(learnt_vision, target_is_directory=True)


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench") / "ds"
    build(out, seed=1, size="quick", games=["breakout", "pong", "broken_game"])
    return out


def test_dataset_is_files_and_a_manifest_with_truth(dataset_dir: Path) -> None:
    ds = Dataset.load(dataset_dir)
    kinds = {(i["game"], i["kind"]) for i in ds.items}
    assert {("breakout", "frame"), ("breakout", "clip"), ("breakout", "question"), ("pong", "frame")} <= kinds
    assert ("pong", "support") in kinds and ("breakout", "support") not in kinds  # support only for unseen games
    assert ds.meta["games"]["breakout"]["split"] == "seen" and ds.meta["games"]["pong"]["split"] == "unseen"
    runs = ds.meta["games"]["pong"]["runs"]
    assert runs["support"] != runs["items"] == ds.meta["seed"]  # support pictures come from another run
    # Labels are the game's, the same on every item (not the last sampled frame's, nor a frame's true fields).
    for game in ("breakout", "pong"):
        assert (
            len({json.dumps(i.get("labels"), sort_keys=True) for i in ds.items if i["game"] == game and "labels" in i})
            == 1
        )
    support = {i["sha256"] for i in ds.of_kind("support") if i["game"] == "pong"}
    scored = {i["sha256"] for i in ds.items if i["game"] == "pong" and i["kind"] != "support"}
    assert support and not support & scored
    assert "pip install brokengame" in ds.meta["missing"]["broken_game"]
    frame = ds.of_kind("frame")[0]
    image = ds.image(frame)
    assert image.ndim == 3 and image.shape[2] == 3 and image.std() > 0
    clip = next(i for i in ds.items if i["kind"] == "clip")
    frames, times = ds.clip(clip)
    assert len(frames) == len(times) > 10 and times == sorted(times)
    assert clip["events"] and all(0 <= e["t"] <= times[-1] + 1 for e in clip["events"])
    for q in ds.of_kind("question"):
        assert q["answers"] and any(str(v) in q["answers"] for v in q["hud"].values())
    assert not list(dataset_dir.rglob("*.bin")) and not list(dataset_dir.rglob("*.a26"))  # no ROMs


def test_same_seed_same_bytes_other_seed_other_data(dataset_dir: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    build(again, seed=1, size="quick", games=["breakout", "pong", "broken_game"])
    assert (again / "manifest.jsonl").read_text() == (dataset_dir / "manifest.jsonl").read_text()
    other = tmp_path / "other"
    build(other, seed=3, size="quick", games=["breakout"])
    first = [json.loads(line)["sha256"] for line in (dataset_dir / "manifest.jsonl").read_text().splitlines()[:3]]
    second = [json.loads(line)["sha256"] for line in (other / "manifest.jsonl").read_text().splitlines()[:3]]
    assert first != second


def test_a_changed_file_is_an_error_not_a_score(dataset_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(dataset_dir, copy)
    ds = Dataset.load(copy)
    frame = ds.of_kind("frame")[0]
    (copy / frame["file"]).write_bytes(b"not a png")
    with pytest.raises(KibitzError, match="changed since the dataset was built"):
        ds.image(frame)
    with pytest.raises(KibitzError, match="kibitz bench build"):
        Dataset.load(tmp_path / "nothing")


def test_event_matching_and_latency() -> None:
    truth = [{"type": "death", "t": 5.0}, {"type": "kill", "t": 8.0}]
    said = [{"type": "death", "t": 5.4}, {"type": "death", "t": 9.0}, {"type": "scene_change", "t": 5.0}]
    tp, fp, fn, errors = match_events(truth, said)
    assert (tp, fp, fn) == (1, 1, 1)  # scene_change is not a scored type
    assert errors == [pytest.approx(0.4)]
    assert match_events(truth, [{"type": "death", "t": 5.0 + MATCH_AFTER_S + 0.1}])[:3] == (0, 1, 2)
    lines = [
        {"t": 4.5, "trigger": "tick", "first_token_s": 0.2, "total_s": 0.5},  # before the event: not about it
        {"t": 7.0, "trigger": "tick", "first_token_s": 0.3, "total_s": 0.9},
    ]
    first, full = reaction_latencies(truth[:1], lines)
    assert first == [pytest.approx(2.3)] and full == [pytest.approx(2.9)]
    early = [{"t": 4.8, "trigger": "death", "first_token_s": 0.4, "total_s": 1.0}]  # set off by the event itself
    assert reaction_latencies(truth[:1], early)[0] == [pytest.approx(0.4)]
    other = [{"t": 5.5, "trigger": "text_change", "first_token_s": 0.4, "total_s": 1.0}]  # about something else
    assert reaction_latencies(truth[:1], other) == ([], [])


def test_aggregations() -> None:
    scores = [{"tp": 2, "fp": 1, "fn": 0}, {"tp": 0, "fp": 0, "fn": 1}]
    assert aggregate(Metric("f1", "f1", True, ""), scores) == pytest.approx(4 / 6)
    assert aggregate(Metric("precision", "precision", True, ""), scores) == pytest.approx(2 / 3)
    assert aggregate(Metric("recall", "recall", True, ""), scores) == pytest.approx(2 / 3)
    assert aggregate(Metric("x", "mean", True, ""), [{"x": 1.0}, {"x": None}, {"x": 0.0}]) == 0.5
    assert aggregate(Metric("x", "p50", False, ""), [{"x": [1.0, 3.0]}, {"x": [2.0]}]) == 2.0
    assert aggregate(Metric("x", "mean", True, ""), []) is None


def test_answers_are_matched_as_whole_numbers_and_words() -> None:
    assert mentions("You have 3 lives left!", "3")
    assert not mentions("Score 300 already", "3") and not mentions("Only 13 left", "3")
    assert mentions("Watch out for that Jackal.", "jackal") and not mentions("jackals", "jackal")
    assert mentions("You have 1,531 gold.", "1531") and not mentions("You have 1,5312 gold.", "1531")
    item = {"question": "Best move?", "good": ["Nf3+", "e4"]}
    assert Advice().score({"text": "Play Nf3 now."}, item)["useful"] == 1.0
    assert Advice().score({"text": "Push a pawn."}, item)["useful"] == 0.0
    q = {"answers": ["2", "two"]}
    assert Questions().score({"text": "Two lives left.", "first_token_s": 0.2}, q)["accuracy"] == 1.0


def test_recognition_score_accepts_the_hud_of_the_frame_before() -> None:
    item = {"game": "smb", "scene": "transition", "hud": {"score": 200, "time": 300}, "hud_alt": {"time": 301}}
    out = {"game": "smb", "scene": "loading", "hud": {"score": 200, "time": 301}}
    scores = Recognition().score(out, item)
    assert scores == {"game": 1.0, "scene": 1.0, "hud": 1.0}  # transition and loading are one shared scene
    assert Recognition().score({"game": None, "scene": "menu", "hud": {}}, item)["hud"] == 0.0


def test_events_task_scores_a_watch() -> None:
    item = {"events": [{"type": "death", "t": 3.0}]}
    out = {"events": [{"type": "death", "t": 3.2}], "lines": [{"t": 3.2, "trigger": "death", "first_token_s": 0.5}]}
    s = Events().score(out, item)
    assert (s["tp"], s["fp"], s["fn"]) == (1, 0, 0) and s["first_token_s"] == [pytest.approx(0.7)]


def test_baseline_reading_of_free_text() -> None:
    games = {"pong": "Pong", "breakout": "Breakout"}
    assert parse_recognition('{"game": "Pong", "scene": "Gameplay", "fields": {"score": "12 points"}}', games) == {
        "game": "pong",
        "scene": "gameplay",
        "hud": {"score": 12},
    }
    assert parse_recognition("This is Pong, a bit like Breakout.", games)["game"] == "pong"
    assert parse_recognition("no idea", games)["game"] is None
    assert "death" in events_in_line("Oh no, you died!") and "game_over" in events_in_line("Game over, friend.")
    assert "check" not in events_in_line("Check out that jump!")


def test_labelled_numbers_from_screen_text() -> None:
    boxes = [
        TextBox("Dlvl:3 $:42 HP:12(14) Pw:2(2)", (0, 400, 600, 416), 0.9),
        TextBox("87%", (100, 300, 140, 320), 0.9),
        TextBox("HEALTH", (95, 322, 150, 340), 0.9),
    ]
    labels = {"depth": ["Dlvl"], "gold": ["$"], "hp": ["HP"], "health": ["HEALTH"], "armor": ["ARMOR"]}
    assert read_labelled(boxes, labels) == {"depth": 3, "gold": 42, "hp": 12, "health": 87}


def test_judge_grades_and_agreement() -> None:
    assert parse_grades('Sure! {"naturalness": 4, "usefulness": 2}') == {"naturalness": 4, "usefulness": 2}
    assert parse_grades("Naturalness: 5\nUsefulness - 3") == {"naturalness": 5, "usefulness": 3}
    for nonsense in ("I liked it a lot", '{"naturalness": 9, "usefulness": 1}', ""):
        with pytest.raises(KibitzError, match="not a pair of 1-5 grades"):
            parse_grades(nonsense)
    assert quadratic_kappa([1, 2, 3, 4, 5], [1, 2, 3, 4, 5]) == pytest.approx(1.0)
    assert quadratic_kappa([1, 2, 3, 4, 5], [5, 4, 3, 2, 1]) == pytest.approx(-1.0)
    rows = [
        {"status": "ok", "stack": "k", "item": f"x#{n}|{judge}", "scores": {"naturalness": g, "usefulness": g}}
        for n, g in enumerate((2, 4, 5))
        for judge in ("a", "b")
    ]
    agree = agreement(rows)
    assert agree["pairs"] == 3 and agree["naturalness"]["exact"] == 1.0
    assert JudgeSpec.parse("openai:gpt-x@http://h:1/v1") == JudgeSpec("openai", "gpt-x", "http://h:1/v1")
    with pytest.raises(KibitzError, match="backend:model"):
        JudgeSpec.parse("justaname")


def _replies(body: dict[str, Any]) -> str:
    system = body["messages"][0]["content"]
    if "You grade lines" in system:
        return '{"naturalness": 4, "usefulness": 3}' if body["model"] == "judge-a" else "I think it is lovely."
    if "Which game is on the screen" in body["messages"][-1]["content"]:
        return '{"game": "Breakout", "scene": "gameplay", "fields": {}}'
    return "Ouch, you died there! Shake it off."


def _run(args: list[str]) -> Any:
    result = CliRunner().invoke(app, ["bench", "run", *args])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def _rows(db: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as con:
        return con.execute("SELECT task, item, stack, status, error, created FROM results ORDER BY 1, 2, 3").fetchall()


def test_run_resumes_marks_failures_and_writes_the_report(dataset_dir: Path, tmp_path: Path) -> None:
    """Both stacks on real frames and clips; a backend that fails, then recovers; one judge that talks nonsense."""
    results = tmp_path / "results.sqlite"
    with FakeOpenAI() as fake:
        fake.reply_fn = _replies
        common = [
            "--dataset",
            str(dataset_dir),
            "--backend",
            "openai",
            "--model",
            "companion",
            "--base-url",
            fake.base_url,
            "--results",
            str(results),
        ]
        judges = ["--judge", f"openai:judge-a@{fake.base_url}", "--judge", f"openai:judge-b@{fake.base_url}"]
        fake.mode = "http500"
        _run([*common, "--no-judge", "--tasks", "recognition,questions"])
        failed = [r for r in _rows(results) if r[3] == "failed"]
        assert any("500" in (r[4] or "") for r in failed)  # the backend's error, as the reason
        assert any(r[1] == "broken_game/missing" and "brokengame" in r[4] for r in failed)
        kibitz_ok = {r[1]: r[5] for r in _rows(results) if r[0] == "recognition" and r[2].startswith("kibitz")}
        assert kibitz_ok  # kibitz recognises without the LLM: those items are done despite the backend
        fake.mode = "ok"
        result = _run([*common, *judges])
        rows = _rows(results)
        # --strict (CI): the missing game's items fail the run, with their reason.
        strict = CliRunner().invoke(app, ["bench", "run", *common, *judges, "--strict"])
        assert strict.exit_code == 1 and "brokengame" in strict.output
    again = {r[1]: r[5] for r in rows if r[0] == "recognition" and r[2].startswith("kibitz") and r[3] == "ok"}
    for item, created in kibitz_ok.items():
        if item in again:
            assert again[item] == created  # cached: not run again
    llm_rows = [r for r in rows if r[0] in ("questions", "events") and not r[1].endswith("/missing")]
    assert llm_rows and all(r[3] == "ok" for r in llm_rows)  # the failed items were retried and now pass
    judge_rows = [r for r in rows if r[0] == "judge"]
    assert any(r[3] == "ok" for r in judge_rows)
    assert any(r[3] == "failed" and "1-5 grades" in r[4] for r in judge_rows)  # judge-b's nonsense
    assert "kibitz vs baseline" in result.output
    report = (tmp_path / "report.html").read_text()
    for part in ("kibitz vs the baseline", "data:image/png;base64", "Failures", "brokengame", "The rubric"):
        assert part in report
    # The report command rebuilds the same report from the database alone.
    out = tmp_path / "again.html"
    rep = CliRunner().invoke(app, ["bench", "report", "--results", str(results), "--out", str(out)])
    assert rep.exit_code == 0, rep.output
    assert "kibitz vs the baseline" in out.read_text()


def test_live_and_bench_describe_labelled_numbers_the_same_way() -> None:
    """Generic mode's numbers read by their labels reach the prompt's state, in a session as in the bench."""
    from kibitz.core.records import Observation, Provenance, Reading
    from kibitz.session import describe_observation

    obs = Observation(0.0, 0, "nethack", 0.9, "gameplay", {"hp": Reading(6, Provenance.OCR)}, ("Dlvl:2 HP:6(12)",))
    text = describe_observation(obs, title="NetHack")
    assert text.startswith("Watching NetHack; the screen shows: gameplay. Read on screen: hp 6.")
    assert "Text on screen: Dlvl:2 HP:6(12)" in text
    blank = Observation(0.0, 0, None, 0.0, "gameplay")
    assert describe_observation(blank) == (
        "Watching the screen; the screen shows: gameplay. No text or numbers could be read on screen."
    )


def test_a_figure_with_no_items_is_drawn_as_missing_not_zero() -> None:
    import math

    from kibitz.bench.report import _measured

    assert math.isnan(_measured(None)) and math.isnan(_measured({"value": None, "n": 3}))
    assert math.isnan(_measured({"value": 0.0, "n": 0}))
    assert _measured({"value": 0.0, "n": 4}) == 0.0  # a real zero stays a zero


def test_a_bank_that_learnt_what_is_scored_is_refused() -> None:
    from kibitz.bench.stacks import check_bank

    meta = {"seed": 1, "games": {"breakout": {"split": "seen"}, "pong": {"split": "unseen"}}}
    origins = check_bank({"breakout"}, meta)  # breakout learnt from emulator seeds 0 and 2 (its own home)
    assert origins["breakout"]["source"] == "emulator" and 1 not in origins["breakout"]["seeds"]
    with pytest.raises(KibitzError, match="test-on-train"):
        check_bank({"breakout"}, {**meta, "seed": 0})
    with pytest.raises(KibitzError, match="unseen game pong"):
        check_bank({"breakout", "pong"}, meta)


@pytest.mark.parametrize(
    ("reply", "answers", "options", "right"),
    [
        ("No worries, you've got this!", ["no"], ["yes", "no"], False),
        ("No, you're not in check.", ["no"], ["yes", "no"], True),
        ("Oh no! Yes, you're in check.", ["yes"], ["yes", "no"], True),
        ("Nice one!", ["1", "one"], [], False),
        ("You have one life left.", ["1", "one"], [], True),
        ("It could be white or black, hard to say.", ["white"], ["white", "black"], False),
        ("It's not black's move, it's white's.", ["white"], ["white", "black"], True),
        ("It isn't white's turn.", ["white"], ["white", "black"], False),
        ("That's a knight... or maybe a bishop.", ["knight"], ["pawn", "knight", "bishop"], False),
        ("You have 120 points.", ["12"], [], False),
        ("Score: 1,531!", ["1531"], [], True),
    ],
)
def test_answers_match_as_whole_answers(reply: str, answers: list[str], options: list[str], right: bool) -> None:
    from kibitz.bench.tasks import answered

    assert answered(reply, answers, options) is right


def test_a_failed_item_counts_as_wrong() -> None:
    from kibitz.bench.runner import _as_silent
    from kibitz.bench.tasks import TASKS

    item = {"id": "g/question/000", "kind": "question", "answers": ["3"], "options": []}
    row = {"item": item["id"], "status": "failed", "scores": {}, "split": "seen", "game": "g"}
    scored = _as_silent(TASKS.get("questions")(), row, {item["id"]: item})
    assert scored is not None and scored["scores"]["accuracy"] == 0.0
    assert _as_silent(TASKS.get("questions")(), {**row, "item": "x#1|judge"}, {}) is None


TIMINGS = ("first_token_s", "total_s", "wall_s")


def _untimed(output: dict[str, Any]) -> dict[str, Any]:
    """An output without its timings (the only part that may differ between two runs)."""
    out = {k: v for k, v in output.items() if k not in TIMINGS}
    if "lines" in out:
        out["lines"] = [{k: v for k, v in line.items() if k not in TIMINGS} for line in out["lines"]]
    return out


def test_stacks_never_see_the_truth(dataset_dir: Path) -> None:
    """Every task hands a stack only what a player's machine would have; with the truth stripped from the items the
    stacks say exactly the same."""
    from dataclasses import fields

    from kibitz.bench.stacks import TRUTH_FREE, BaselineStack, ItemView, KibitzStack
    from kibitz.brain.llm.openai import OpenAIBackend
    from kibitz.core.config import KibitzConfig

    data = Dataset.load(dataset_dir)
    truth = {"id", "game", "title", "genre", "split", "scene", "hud", "hud_alt", "events", "answers", "options", "good"}
    assert not truth & set(TRUTH_FREE) and not truth & {f.name for f in fields(ItemView)}
    with FakeOpenAI() as fake:
        fake.reply_fn = _replies
        backend = OpenAIBackend(fake.base_url, "companion")
        stacks = [KibitzStack(KibitzConfig(), backend), BaselineStack(KibitzConfig(), backend)]
        for stack in stacks:
            stack.prepare(data)
        for kind, task in (("frame", Recognition()), ("question", Questions()), ("clip", Events())):
            for item in data.of_kind(kind)[:2]:
                bare = {k: item[k] for k in ("kind", "file", *TRUTH_FREE) if k in item}
                for stack in stacks:
                    if kind == "clip" and isinstance(stack, KibitzStack):
                        # The companion's lines depend on how fast the model answers; what was seen does not.
                        assert task.run(stack, data, item)["events"] == task.run(stack, data, bare)["events"]
                        continue
                    assert _untimed(task.run(stack, data, item)) == _untimed(task.run(stack, data, bare)), (
                        stack.name,
                        item["id"],
                    )


class CountingStack(Stack):
    """A stack that only counts how often it is run (for the results cache)."""

    name = "counting"
    calls = 0

    def recognise(self, image: Any, view: Any) -> dict[str, Any]:
        CountingStack.calls += 1
        return {"game": None, "scene": "gameplay", "hud": {}}

    def watch(self, frames: Any, times: Any, view: Any) -> dict[str, Any]:
        raise AssertionError("not used")

    def answer(self, image: Any, question: str, view: Any) -> dict[str, Any]:
        raise AssertionError("not used")


def test_results_are_keyed_by_dataset_item_content_and_stack_identity(dataset_dir: Path, tmp_path: Path) -> None:
    """A rebuilt dataset, a changed item or a changed stack never reuses or rescores old outputs."""
    from kibitz.bench.runner import current_rows, run_task, summarise
    from kibitz.bench.store import ResultStore
    from kibitz.brain.llm.openai import OpenAIBackend
    from kibitz.core.config import KibitzConfig

    data = Dataset.load(dataset_dir)
    backend = OpenAIBackend("http://127.0.0.1:9/v1", "never-called")
    store = ResultStore(tmp_path / "results.sqlite")
    frames = len(data.of_kind("frame"))
    CountingStack.calls = 0
    run_task(Recognition(), CountingStack(KibitzConfig(), backend), data, store)
    assert CountingStack.calls == frames
    run_task(Recognition(), CountingStack(KibitzConfig(), backend), data, store)
    assert CountingStack.calls == frames  # the same dataset, items and stack: cached
    other = KibitzConfig()
    other.persona.name = "coach"
    run_task(Recognition(), CountingStack(other, backend), data, store)
    assert CountingStack.calls == 2 * frames  # another configuration: everything again
    # One item's content changes (its truth, here), as after a rebuild: that item alone runs again.
    changed = tmp_path / "ds"
    shutil.copytree(dataset_dir, changed)
    items = [json.loads(line) for line in (changed / "manifest.jsonl").read_text().splitlines()]
    target = next(i for i in items if i["kind"] == "frame")
    target["scene"] = "menu" if target["scene"] != "menu" else "gameplay"
    (changed / "manifest.jsonl").write_text("".join(json.dumps(i, sort_keys=True) + "\n" for i in items))
    data2 = Dataset.load(changed)
    assert data2.fingerprint != data.fingerprint
    # Rows of the old dataset are not this one's: none is current, none reaches a figure.
    assert current_rows(store, data2, "recognition") == []
    assert not [f for f in summarise(store, data2)["figures"] if f["n"]]
    run_task(Recognition(), CountingStack(other, backend), data2, store)
    assert CountingStack.calls == 3 * frames  # another dataset: every item again
    assert len(current_rows(store, data2, "recognition")) == frames + len(data2.of_kind("missing"))
    assert current_rows(store, data, "recognition") == []  # the old dataset's rows were replaced, not mixed in


def test_replay_runs_in_real_time_only_while_the_companion_works() -> None:
    import time

    import numpy as np

    from kibitz.bench.stacks import replay

    times = [i * 0.1 for i in range(11)]
    frames = [np.zeros((4, 4, 3), np.uint8)] * len(times)
    start = time.perf_counter()
    assert [f.t for f in replay(frames, times, lambda: False)] == times
    assert time.perf_counter() - start < 0.3  # idle: as fast as perception takes the frames
    start = time.perf_counter()
    list(replay(frames, times, lambda: True))
    assert time.perf_counter() - start >= 0.95  # speaking: the clip's second takes a second


def test_the_speak_policy_runs_on_the_clips_clock_in_a_replay() -> None:
    """Two deaths 7 s apart in a clip replayed faster than real time: on the clip's clock both are spoken (the
    cooldown has passed in the game); on the wall clock the second fell in a cooldown that never ended."""
    import numpy as np

    from kibitz.bench.stacks import replay
    from kibitz.brain.companion import Companion
    from kibitz.brain.llm.openai import OpenAIBackend
    from kibitz.core.config import KibitzConfig
    from kibitz.core.persona import load_persona
    from kibitz.core.records import Frame, Observation, Provenance, Reading
    from kibitz.outputs.sinks import Output
    from kibitz.perception.base import Perceiver
    from kibitz.session import Session

    class Lives(Perceiver):
        def perceive(self, frame: Frame) -> Observation:
            lives = 3 - (frame.t >= 2.0) - (frame.t >= 9.0)
            return Observation(frame.t, frame.index, None, 0.0, "gameplay", {"lives": Reading(lives, Provenance.OCR)})

    times = [i * 0.5 for i in range(41)]
    frames = [np.zeros((4, 4, 3), np.uint8)] * len(times)
    spoken = {}
    with FakeOpenAI() as fake:
        for clock in ("media", "wall"):
            config = KibitzConfig()
            config.perception.labels = {"lives": ["LIVES"]}
            config.policy.critical_priority = 10  # deaths obey the cooldown here
            config.policy.clock = clock  # type: ignore[assignment]
            companion = Companion(OpenAIBackend(fake.base_url, "m"), load_persona("buddy"), 40, 0.0)
            session = Session(config, None, companion, Output(), perceiver=Lives(None, config.perception))
            companion.start(warm=False)
            result = session.run(replay(frames, times, lambda c=companion: c.working), drain_s=30)
            companion.stop()
            assert [e.t for e in result.events if e.type == "death"] == [2.0, 9.0]
            spoken[clock] = [u.t for u in result.utterances if u.trigger == "death"]
    assert spoken["media"] == [2.0, 9.0]
    assert spoken["wall"] == [2.0]


def test_intervals_on_figures_and_ratios() -> None:
    from kibitz.bench.tasks import bootstrap, bootstrap_ratio

    metric = Metric("accuracy", "mean", True, "")
    scores = [{"accuracy": float(i % 4 != 0)} for i in range(40)]  # 0.75
    low, high = bootstrap(metric, scores) or (None, None)
    assert low is not None and high is not None and low < 0.75 < high and high - low < 0.4
    assert bootstrap(metric, []) is None
    assert bootstrap(metric, [{"accuracy": 1.0}] * 5) == (1.0, 1.0)
    pairs = [({"accuracy": 1.0}, {"accuracy": float(i % 2)}) for i in range(40)]  # 1.0 against 0.5: ratio 2
    rlow, rhigh = bootstrap_ratio(metric, pairs) or (None, None)
    assert rlow is not None and rhigh is not None and rlow < 2.0 < rhigh
    p95 = Metric("first_token_s", "p95", False, "")
    lat = [({"first_token_s": [1.0]}, {"first_token_s": [3.0]})] * 10
    assert bootstrap_ratio(p95, lat) == (3.0, 3.0)  # lower is better: the baseline's over kibitz's


def test_an_event_no_line_reacts_to_counts_as_missed() -> None:
    truth = [{"type": "death", "t": 1.0}, {"type": "death", "t": 10.0}]
    item = {"events": truth}
    quiet = Events().score({"events": [], "lines": []}, item)
    assert quiet["reacted"] == 0 and quiet["true_events"] == 2 and quiet["first_token_s"] == []
    line = {"t": 1.5, "event_t": 1.2, "text": "Oof!", "trigger": "death", "first_token_s": 0.5, "total_s": 1.0}
    one = Events().score({"events": [{"type": "death", "t": 1.2}], "lines": [line]}, item)
    assert one["reacted"] == 1 and one["first_token_s"] == [pytest.approx(0.7)]  # from the event it reacted to
    reacted = Metric("reacted", "reacted", True, "")
    assert aggregate(reacted, [quiet, one]) == 0.25


def test_the_frame_to_vlm_baseline_sends_the_picture(dataset_dir: Path) -> None:
    from kibitz.bench.stacks import ItemView, VLMBaselineStack
    from kibitz.brain.llm.openai import OpenAIBackend
    from kibitz.core.config import KibitzConfig

    data = Dataset.load(dataset_dir)
    item = data.of_kind("frame")[0]
    with FakeOpenAI() as fake:
        backend = OpenAIBackend(fake.base_url, "text-only")
        with pytest.raises(KibitzError, match="--vlm-url"):
            VLMBaselineStack(KibitzConfig(), backend, {})
        stack = VLMBaselineStack(KibitzConfig(), backend, {"vlm_url": fake.base_url, "vlm_model": "vl"})
        stack.prepare(data)
        assert stack.label.startswith("baseline-vlm-5s[vlm:vl]")
        fake.content = '{"game": "Breakout", "scene": "gameplay", "fields": {"score": 3}}'
        out = stack.recognise(data.image(item), ItemView.of(item))
        assert out["game"] == "breakout" and out["hud"] == {"score": 3}
        fake.content = "You have 3 lives left."
        said = stack.answer(data.image(item), "How many lives?", ItemView.of(item))
        assert said["text"] == "You have 3 lives left." and said["first_token_s"] == said["total_s"]
        sent = fake.requests[-1]["messages"][-1]["content"]
        assert sent[0]["type"] == "image_url" and "response_format" not in fake.requests[-1]
        assert sent[0]["image_url"]["url"].startswith("data:image/jpeg;base64,")


def test_events_by_type_and_recognition_by_scene_count_failures_as_misses() -> None:
    from kibitz.bench.breakdown import per_event_type, per_scene

    items = {
        "a": {"split": "seen", "events": [{"t": 2.0, "type": "death"}, {"t": 9.0, "type": "level_change"}]},
        "b": {"split": "unseen", "events": [{"t": 1.0, "type": "kill"}]},
    }
    rows = [
        # a death caught, a level change missed, a kill reported that did not happen (and one too late to count)
        {
            "item": "a",
            "stack": "kibitz",
            "status": "ok",
            "output": {"events": [{"t": 2.5, "type": "death"}, {"t": 4.0, "type": "kill"}]},
        },
        {"item": "b", "stack": "kibitz", "status": "failed", "output": None},
    ]
    found = {(r["split"], r["type"]): r for r in per_event_type(rows, items)}
    assert (found["seen", "death"]["true"], found["seen", "death"]["matched"], found["seen", "death"]["f1"]) == (
        1,
        1,
        1,
    )
    assert found["seen", "level_change"]["recall"] == 0.0 and found["seen", "level_change"]["precision"] is None
    assert found["seen", "kill"]["reported"] == 1 and found["seen", "kill"]["f1"] == 0.0
    assert found["unseen", "kill"]["true"] == 1 and found["unseen", "kill"]["matched"] == 0  # a failed clip
    assert found["all", "kill"]["true"] == 1 and found["all", "kill"]["reported"] == 1

    frames = {
        "f1": {"split": "seen", "game": "smb", "scene": "title"},
        "f2": {"split": "seen", "game": "smb", "scene": "gameplay"},
        "f3": {"split": "unseen", "game": "doom", "scene": "death"},
    }
    rec_rows = [
        {"item": "f1", "stack": "kibitz", "status": "ok", "output": {"game": "smb", "scene": "menu"}},
        {"item": "f2", "stack": "kibitz", "status": "ok", "output": {"game": None, "scene": "gameplay"}},
        {"item": "f3", "stack": "kibitz", "status": "failed", "output": None},
    ]
    scenes = {(r["split"], r["scene"]): r for r in per_scene(rec_rows, frames)}
    assert scenes["seen", "title"]["scene_right"] == 1  # "menu" is the shared name of a title screen
    assert (scenes["seen", "gameplay"]["scene_right"], scenes["seen", "gameplay"]["game_right"]) == (1, 0)
    assert scenes["unseen", "death"] == {
        "stack": "kibitz",
        "split": "unseen",
        "scene": "death",
        "frames": 1,
        "scene_right": 0,
        "game_right": 0,
    }


class ScriptedRecorder(Recorder):
    """A game whose events come at set times: a death at 10 s, kills at 14.5 s and 30 s (two frames a second)."""

    game = "scripted_game"
    title = "Scripted"
    genre = "test"
    fps = 2.0
    clip_fps = 2.0
    events: dict[float, list[str]] = {10.0: ["death"], 14.5: ["kill"], 30.0: ["kill"]}  # noqa: RUF012

    def check_installed(self) -> None:
        pass

    def frames(self, seed: int, seconds: float) -> Iterator[Any]:
        from kibitz.bench.recorders.base import TrueFrame

        for i in range(int(seconds * self.fps) + 1):
            t = i / self.fps
            yield TrueFrame(t, np.full((8, 8, 3), i % 256, np.uint8), "gameplay", {}, self.events.get(t, []))


def test_a_clip_s_truth_holds_the_events_its_lead_in_shows(tmp_path: Path) -> None:
    """A clip starts with the seconds before its first event: an event in them (a death at the end of the clip before)
    is on screen, so it is in the clip's truth too (a stack that saw it was once counted wrong)."""
    from kibitz.bench.dataset import Plan, _Writer, record_game

    items = record_game(ScriptedRecorder(), Plan(40.0, 0, 3, 0, 0, 0), 1, _Writer(tmp_path))
    clips = [i for i in items if i["kind"] == "clip"]
    assert [[(e["type"], e["t"]) for e in c["events"]] for c in clips] == [
        [("death", 6.5)],  # 3.5 … 14.0
        [("death", 2.0), ("kill", 6.5)],  # 8.0 … 18.5: the death at 10 s is in its first seconds
        [("kill", 6.5)],  # 23.5 … 34.0
    ]
