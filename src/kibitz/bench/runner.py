"""`kibitz bench run`: every task × item × stack, cached in the results store; then the judges; then figures.

A failure (a missing game package, a backend that errors, a corrupt file, a judge that answers nonsense) marks
that one item failed with its reason and the run goes on; the report lists failures next to the figures.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from typing import Any

from kibitz.bench.breakdown import per_event_type, per_scene
from kibitz.bench.dataset import Dataset
from kibitz.bench.judge import (
    JudgeSpec,
    agreement,
    judge_messages,
    line_item,
    lines_to_judge,
    parse_grades,
    rubric_version,
)
from kibitz.bench.stacks import Stack, generate, json_closed
from kibitz.bench.store import ResultStore
from kibitz.bench.tasks import TASKS, Metric, Task, aggregate, bootstrap, bootstrap_ratio
from kibitz.brain.llm.base import LLMBackend
from kibitz.core.errors import KibitzError

log = logging.getLogger(__name__)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, KibitzError):
        return exc.message
    return f"{type(exc).__name__}: {exc}"


def run_task(
    task: Task, stack: Stack, dataset: Dataset, store: ResultStore, progress: Any = None, rerun_failed: bool = True
) -> tuple[int, int]:
    """Run one task for one stack over the dataset; returns (done now, failed now).

    A stored result is reused only when it was made on this dataset, for this item's content, by a stack with this
    identity (configuration, model file, code): anything else runs again."""
    items = dataset.of_kind(task.item_kind)
    missing = dataset.of_kind("missing")
    identity = stack.identity
    identities = store.meta().get("identities", {})
    store.set_meta("identities", {**identities, stack.label: identity})
    bar = progress.add_task(f"{task.name} · {stack.label}", total=len(items)) if progress else None
    done = failed = 0
    for item in missing:  # a game that could not be recorded fails every task, visibly
        store.put(task.name, item, stack.label, error=item["reason"], key=dataset.result_key(item, identity))
    for item in items:
        key = dataset.result_key(item, identity)
        cached = store.get(task.name, item["id"], stack.label, key)
        if cached is not None and (cached["status"] == "ok" or not rerun_failed):
            if cached["status"] == "ok" and cached["output"] is not None:
                # Scoring is cheap and may have changed since: score the stored output again.
                scores = task.score(cached["output"], item)
                if scores != cached["scores"]:
                    store.put(
                        task.name,
                        item,
                        stack.label,
                        output=cached["output"],
                        scores=scores,
                        seconds=cached["seconds"],
                        key=key,
                    )
            if progress:
                progress.advance(bar)
            continue
        start = time.perf_counter()
        try:
            output = task.run(stack, dataset, item)
            scores = task.score(output, item)
            seconds = time.perf_counter() - start
            store.put(task.name, item, stack.label, output=output, scores=scores, seconds=seconds, key=key)
            done += 1
        except Exception as exc:  # one bad item must not end the run: record why and go on
            log.warning("%s %s on %s failed: %s", task.name, item["id"], stack.label, _reason(exc))
            store.put(task.name, item, stack.label, error=_reason(exc), seconds=time.perf_counter() - start, key=key)
            failed += 1
        if progress:
            progress.advance(bar)
    return done, failed


def derive(task: Task, store: ResultStore, dataset: Dataset) -> None:
    """Score a derived task (latency) from the stored outputs of its source task."""
    assert task.source is not None
    items = {i["id"]: i for i in dataset.items}
    for row in current_rows(store, dataset, task.source):
        item = items[row["item"]]
        if row["status"] == "ok" and row["output"] is not None:
            scores = task.score(row["output"], item)
            store.put(task.name, item, row["stack"], scores=scores, seconds=0.0, key=row["key"])
        else:
            store.put(task.name, item, row["stack"], error=row["error"] or "its source task failed", key=row["key"])


def current_rows(
    store: ResultStore, dataset: Dataset, task: str | None = None, stack: str | None = None
) -> list[dict[str, Any]]:
    """The stored results made on this dataset, for its items' present content, by each stack's latest identity:
    what a report may show (a rebuilt dataset or a changed stack leaves old rows behind, never in a figure)."""
    identities = store.meta().get("identities", {})
    items = {i["id"]: i for i in dataset.items}
    out = []
    for row in store.rows(task, stack):
        item, identity = items.get(row["item"]), identities.get(row["stack"])
        if item is not None and identity is not None and row["key"] == dataset.result_key(item, identity):
            out.append(row)
    return out


def said_rows(store: ResultStore, dataset: Dataset, stack: str) -> list[dict[str, Any]]:
    """A stack's current results whose lines the judges grade (the events and advice tasks)."""
    return current_rows(store, dataset, "events", stack) + current_rows(store, dataset, "advice", stack)


def run_judges(
    judges: Sequence[tuple[JudgeSpec, LLMBackend]],
    stacks: Sequence[str],
    dataset: Dataset,
    store: ResultStore,
    progress: Any = None,
    max_lines: int | None = 40,
) -> None:
    """Grade the lines of the given stacks (at most max_lines each) with every judge (cached per line and judge)."""
    import threading

    items = {i["id"]: i for i in dataset.items}
    lock = threading.Lock()
    rubric = rubric_version()
    for stack in stacks:
        lines = list(lines_to_judge(said_rows(store, dataset, stack), items))
        if max_lines is not None and len(lines) > max_lines:  # a fixed sample: the same lines on every rerun
            lines = random.Random(stack).sample(lines, max_lines)
        for spec, backend in judges:
            bar = progress.add_task(f"judge {spec.label} · {stack}", total=len(lines)) if progress else None
            for key, moment, line in lines:
                item_id = f"{key}|{spec.label}#{rubric}"  # a changed rubric grades the lines anew
                source = items.get(line_item(key), {"game": "", "split": ""})
                cached = store.get("judge", item_id, stack)
                if cached is None or cached["status"] != "ok":
                    start = time.perf_counter()
                    try:
                        out = generate(backend, judge_messages(moment, line), 40, 0.0, lock, json_closed)
                        grades = parse_grades(out.text)
                        store.put(
                            "judge",
                            source,
                            stack,
                            output={"moment": moment, "line": line, "reply": out.text},
                            scores=dict(grades),
                            seconds=time.perf_counter() - start,
                            item_id=item_id,
                        )
                    except Exception as exc:
                        store.put("judge", source, stack, error=_reason(exc), item_id=item_id)
                if progress:
                    progress.advance(bar)


JUDGE_METRICS = (("naturalness", "mean judge grade, 1-5"), ("usefulness", "mean judge grade, 1-5"))


def summarise(store: ResultStore, dataset: Dataset, tasks: Sequence[str] | None = None) -> dict[str, Any]:
    """Every figure of the run: per task, metric, stack and split (all, seen, unseen), and per game."""
    names = list(tasks) if tasks is not None else [t for t in TASKS.names() if current_rows(store, dataset, t)]
    stacks = sorted({r["stack"] for r in current_rows(store, dataset) if r["task"] != "judge"})
    figures: list[dict[str, Any]] = []
    per_game: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    scored: Scored = {}
    """(task, metric, aggregation, stack) → item → scores, for the paired intervals of the comparison."""
    games = sorted({i["game"] for i in dataset.items})
    items = {i["id"]: i for i in dataset.items}
    for name in names:
        task = TASKS.get(name)()
        rows = current_rows(store, dataset, name)
        for metric in task.metrics:
            for stack in stacks:
                mine = [r for r in rows if r["stack"] == stack]
                # A failed item counts as wrong: scored as if the stack had said nothing (and shown by reason).
                ok = [r for r in mine if r["status"] == "ok"] + [
                    r for r in (_as_silent(task, r, items) for r in mine if r["status"] == "failed") if r is not None
                ]
                scored[(name, metric.name, metric.aggregation, stack)] = {r["item"]: r["scores"] for r in ok}
                for split in ("all", "seen", "unseen"):
                    chosen = [r for r in ok if split == "all" or r["split"] == split]
                    values = [r["scores"] for r in chosen]
                    ci = bootstrap(metric, values)
                    figures.append(
                        {
                            "task": name,
                            "metric": metric.name,
                            "aggregation": metric.aggregation,
                            "higher_is_better": metric.higher_is_better,
                            "understanding": metric.understanding,
                            "help": metric.help,
                            "stack": stack,
                            "split": split,
                            "value": aggregate(metric, values),
                            "ci95": None if ci is None else list(ci),
                            **_counts(metric, values),
                            "n": len(chosen),
                            "failed": sum(1 for r in mine if r["status"] == "failed" and split in ("all", r["split"])),
                        }
                    )
                for game in games:
                    chosen = [r for r in ok if r["game"] == game]
                    if chosen:
                        per_game.append(
                            {
                                "task": name,
                                "metric": metric.name,
                                "aggregation": metric.aggregation,
                                "stack": stack,
                                "game": game,
                                "value": aggregate(metric, [r["scores"] for r in chosen]),
                                "n": len(chosen),
                            }
                        )
        failures += [
            {"task": name, "stack": r["stack"], "item": r["item"], "error": r["error"]}
            for r in rows
            if r["status"] == "failed"
        ]
    # Today's rubric, on lines the current results said (a grade is keyed by the exact line it graded).
    said = {stack: list(lines_to_judge(said_rows(store, dataset, stack), items)) for stack in stacks}
    said_now = {key for lines in said.values() for key, _, _ in lines}
    judge_rows = [
        r
        for r in store.rows("judge")
        if r["item"].endswith("#" + rubric_version()) and r["item"].rpartition("|")[0] in said_now
    ]
    judge: dict[str, Any] = {"agreement": agreement(judge_rows), "figures": []}
    for stack in stacks:
        mine = [r for r in judge_rows if r["stack"] == stack]
        ok = [r["scores"] for r in mine if r["status"] == "ok"]
        for scale, help_text in JUDGE_METRICS:
            values = [s[scale] for s in ok]
            judge["figures"].append(
                {
                    "stack": stack,
                    "metric": scale,
                    "value": sum(values) / len(values) if values else None,
                    "n": len(values),
                    "failed": sum(1 for r in mine if r["status"] == "failed"),
                    "help": help_text,
                }
            )
    failures += [
        {"task": "judge", "stack": r["stack"], "item": r["item"], "error": r["error"]}
        for r in judge_rows
        if r["status"] == "failed"
    ]
    examples = []
    for stack in stacks:
        examples += [{"stack": stack, "item": key, "moment": m, "line": line} for key, m, line in said[stack][:8]]
    return {
        "stacks": stacks,
        "examples": examples,
        "figures": figures,
        "per_game": per_game,
        "failures": failures,
        "judge": judge,
        "latency": latency_samples(current_rows(store, dataset, "latency"), stacks),
        "per_event_type": per_event_type(current_rows(store, dataset, "events"), items),
        "per_scene": per_scene(current_rows(store, dataset, "recognition"), items),
        "comparison": compare(figures, stacks, scored),
        "meta": store.meta(),
        "dataset": dataset.meta,
        # What kibitz's prototype bank had learnt, and from where (the dataset's seed is in "dataset"): scoring
        # runs and learning runs are disjoint (bench.stacks.check_bank refuses a run where they are not).
        "learnt_from": _origins(),
    }


def _counts(metric: Metric, scores: list[dict[str, Any]]) -> dict[str, Any]:
    """For a share of the true events ("reacted"): how many of how many, to show beside it."""
    if metric.aggregation != "reacted":
        return {}
    return {"counts": [sum(s.get("reacted", 0) for s in scores), sum(s.get("true_events", 0) for s in scores)]}


def _as_silent(task: Task, row: dict[str, Any], items: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """A failed row scored as an empty output (None for rows that are no dataset item, e.g. a judge's grade)."""
    item = items.get(row["item"])
    if item is None:
        return None
    try:
        return {**row, "scores": task.score({}, item)}
    except (KeyError, TypeError, ValueError):
        return None


def _origins() -> dict[str, Any]:
    from kibitz.perception.assets import GLYPH_SEEDS, PROTOTYPE_SEEDS, origins

    return {"games": origins(), "glyph_seeds": list(GLYPH_SEEDS), "prototype_seeds": list(PROTOTYPE_SEEDS)}


def latency_samples(rows: list[dict[str, Any]], stacks: Sequence[str]) -> dict[str, dict[str, list[float]]]:
    out: dict[str, dict[str, list[float]]] = {}
    for stack in stacks:
        first: list[float] = []
        full: list[float] = []
        for r in (r for r in rows if r["stack"] == stack):
            if r["status"] == "ok" and r["scores"]:
                first += r["scores"].get("first_token_s", [])
                full += r["scores"].get("line_s", [])
        out[stack] = {"first_token_s": first, "line_s": full}
    return out


Scored = dict[tuple[str, str, str, str], dict[str, dict[str, Any]]]


def compare(figures: list[dict[str, Any]], stacks: Sequence[str], scored: Scored | None = None) -> list[dict[str, Any]]:
    """kibitz's stack against the baseline on each understanding figure and on latency p95, in this run, with a
    paired 95 % interval of each ratio when the item scores are given."""
    rows: list[dict[str, Any]] = []
    for k in (s for s in stacks if s.startswith("kibitz")):
        backend = k.partition("[")[2]  # kibitz[llamacpp:model] pairs with baseline-ocr-5s[llamacpp:model]
        # ...and with any frame-to-VLM baseline (its model is the VLM server's).
        same = [
            s
            for s in stacks
            if (s.startswith("baseline") and s.partition("[")[2] == backend) or s.startswith("baseline-vlm")
        ]
        for b in same:
            rows += _compare_pair(figures, k, b, scored or {})
    return rows


def _ratio_ci(f: dict[str, Any], k: str, b: str, scored: Scored) -> list[float] | None:
    key = (f["task"], f["metric"], f["aggregation"])
    mine, theirs = scored.get((*key, k), {}), scored.get((*key, b), {})
    pairs = [(mine[i], theirs[i]) for i in sorted(set(mine) & set(theirs))]
    metric = Metric(f["metric"], f["aggregation"], f["higher_is_better"], f["help"])
    ci = bootstrap_ratio(metric, pairs)
    return None if ci is None else list(ci)


def _compare_pair(figures: list[dict[str, Any]], k: str, b: str, scored: Scored) -> list[dict[str, Any]]:
    rows = []
    for f in figures:
        if f["stack"] != k or f["split"] != "all":
            continue
        if not (f["understanding"] or (f["task"] == "latency" and f["aggregation"] in ("p95", "reacted"))):
            continue
        other = next(
            (
                g
                for g in figures
                if g["stack"] == b
                and g["split"] == "all"
                and (g["task"], g["metric"], g["aggregation"]) == (f["task"], f["metric"], f["aggregation"])
            ),
            None,
        )
        if other is None or f["value"] is None or other["value"] is None:
            continue
        kv, bv = f["value"], other["value"]
        better = kv > bv if f["higher_is_better"] else kv < bv
        ratio = (bv / kv if kv else None) if not f["higher_is_better"] else (kv / bv if bv else None)
        rows.append(
            {
                "task": f["task"],
                "metric": f["metric"],
                "aggregation": f["aggregation"],
                "kibitz": kv,
                "baseline": bv,
                "kibitz_better": better,
                "ratio": ratio,
                "ratio_ci95": _ratio_ci(f, k, b, scored) if ratio is not None else None,
                "kibitz_stack": k,
                "baseline_stack": b,
            }
        )
    return rows
