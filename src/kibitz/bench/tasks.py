"""The bench's tasks, each declared with its metrics (how they aggregate, which way is better), as in
lm-evaluation-harness: a task runs a stack on one dataset item and scores the output against the truth."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, ClassVar

import numpy as np
import yaml

from kibitz.bench.dataset import Dataset
from kibitz.bench.recorders.base import SCORED_EVENTS
from kibitz.bench.stacks import ItemView, Stack
from kibitz.core.registry import Registry

MATCH_BEFORE_S = 1.0
"""A detection may come this long before the true event (a clip is stored at a few frames a second)."""
MATCH_AFTER_S = 6.0
"""...and this long after it (a companion that speaks every 5 s gets its chance)."""


@dataclass(frozen=True, slots=True)
class Metric:
    name: str
    aggregation: str
    """A key of AGGREGATIONS: mean, p50, p95, precision, recall, f1."""
    higher_is_better: bool
    help: str
    understanding: bool = False
    """Counts as a game-understanding figure (the ones kibitz must beat the baseline on)."""


def _values(scores: Sequence[dict[str, Any]], name: str) -> list[float]:
    out: list[float] = []
    for s in scores:
        v = s.get(name)
        if isinstance(v, list):
            out += [float(x) for x in v]
        elif v is not None:
            out.append(float(v))
    return out


def _ratio(num: str, den: Sequence[str]) -> Callable[[Sequence[dict[str, Any]], str], float | None]:
    def agg(scores: Sequence[dict[str, Any]], name: str) -> float | None:
        n = sum(s.get(num, 0) for s in scores)
        d = sum(s.get(k, 0) for s in scores for k in den)
        return n / d if d else None

    return agg


def _f1(scores: Sequence[dict[str, Any]], name: str) -> float | None:
    tp, fp, fn = (sum(s.get(k, 0) for s in scores) for k in ("tp", "fp", "fn"))
    return 2 * tp / (2 * tp + fp + fn) if (tp + fp + fn) else None


def _pct(q: float) -> Callable[[Sequence[dict[str, Any]], str], float | None]:
    def agg(scores: Sequence[dict[str, Any]], name: str) -> float | None:
        values = _values(scores, name)
        return float(np.percentile(values, q)) if values else None

    return agg


def _mean(scores: Sequence[dict[str, Any]], name: str) -> float | None:
    values = _values(scores, name)
    return float(np.mean(values)) if values else None


AGGREGATIONS: Registry[Callable[[Sequence[dict[str, Any]], str], float | None]] = Registry("aggregation")
AGGREGATIONS.register("mean", _mean, "mean of the items' values (items without a value are left out)")
AGGREGATIONS.register("p50", _pct(50), "median of all values")
AGGREGATIONS.register("p95", _pct(95), "95th percentile of all values")
AGGREGATIONS.register("precision", _ratio("tp", ("tp", "fp")), "micro precision from summed tp/fp")
AGGREGATIONS.register("recall", _ratio("tp", ("tp", "fn")), "micro recall from summed tp/fn")
AGGREGATIONS.register("f1", _f1, "micro F1 from summed tp/fp/fn")
AGGREGATIONS.register("reacted", _ratio("reacted", ("true_events",)), "share of the true events reacted to")


def aggregate(metric: Metric, scores: Sequence[dict[str, Any]]) -> float | None:
    """The metric over item scores (for p50/p95 the metric's name is the list to pool)."""
    return AGGREGATIONS.get(metric.aggregation)(scores, metric.name)


BOOTSTRAP_RESAMPLES = 1000


def bootstrap(
    metric: Metric, scores: Sequence[dict[str, Any]], resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0
) -> tuple[float, float] | None:
    """A 95 % percentile-bootstrap interval of the metric, resampling whole items (a clip's events stay together);
    None without items."""
    if not scores:
        return None
    rng = np.random.default_rng(seed)
    n = len(scores)
    values = [aggregate(metric, [scores[i] for i in rng.integers(0, n, n)]) for _ in range(resamples)]
    kept = [v for v in values if v is not None]
    if not kept:
        return None
    return float(np.percentile(kept, 2.5)), float(np.percentile(kept, 97.5))


def bootstrap_ratio(
    metric: Metric,
    pairs: Sequence[tuple[dict[str, Any], dict[str, Any]]],
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> tuple[float, float] | None:
    """A 95 % interval of the ratio of two stacks' figures (the better over the worse, as `ratio` in the comparison),
    resampling the items both were scored on, in pairs."""
    if not pairs:
        return None
    rng = np.random.default_rng(seed)
    n = len(pairs)
    out: list[float] = []
    for _ in range(resamples):
        idx = rng.integers(0, n, n)
        a = aggregate(metric, [pairs[i][0] for i in idx])
        b = aggregate(metric, [pairs[i][1] for i in idx])
        if a is None or b is None:
            continue
        num, den = (a, b) if metric.higher_is_better else (b, a)
        if den:
            out.append(num / den)
    if not out:
        return None
    return float(np.percentile(out, 2.5)), float(np.percentile(out, 97.5))


class Task(ABC):
    name: ClassVar[str]
    item_kind: ClassVar[str]
    metrics: ClassVar[tuple[Metric, ...]]
    help: ClassVar[str]
    source: ClassVar[str | None] = None
    """A derived task reads the stored outputs of this task instead of running anything."""

    @abstractmethod
    def run(self, stack: Stack, dataset: Dataset, item: dict[str, Any]) -> dict[str, Any]:
        """The stack's output for this item (stored, so a rerun resumes)."""

    @abstractmethod
    def score(self, output: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
        """Per-item scores against the item's truth."""


TASKS: Registry[type[Task]] = Registry("bench task")


def same_scene(said: str, truth: str) -> bool:
    from kibitz.perception.classifier import canonical_scene

    said, truth = said.lower().strip(), truth.lower().strip()
    return said == truth or canonical_scene(said) == canonical_scene(truth)


@TASKS.decorator("recognition")
class Recognition(Task):
    name = "recognition"
    item_kind = "frame"
    help = "Which game, which scene, and the HUD values, from one picture."
    metrics = (
        Metric("game", "mean", True, "game named correctly (unknown counts as wrong)", True),
        Metric("scene", "mean", True, "scene named correctly (shared vocabulary accepted)", True),
        Metric("hud", "mean", True, "share of the HUD fields on screen read exactly", True),
    )

    def run(self, stack: Stack, dataset: Dataset, item: dict[str, Any]) -> dict[str, Any]:
        return stack.recognise(dataset.image(item), ItemView.of(item))

    def score(self, output: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
        hud, alt, said = item.get("hud", {}), item.get("hud_alt", {}), output.get("hud") or {}
        right = [said.get(k) is not None and said.get(k) in (v, alt.get(k, v)) for k, v in hud.items()]
        return {
            "game": float(output.get("game") == item["game"]),
            "scene": float(same_scene(str(output.get("scene", "")), item["scene"])),
            "hud": float(np.mean(right)) if right else None,
        }


def match_events(truth: list[dict[str, Any]], said: list[dict[str, Any]]) -> tuple[int, int, int, list[float]]:
    """Greedy one-to-one matching by type within the window: (tp, fp, fn, |time errors|)."""
    scored = [e for e in said if e["type"] in SCORED_EVENTS]
    truth = [e for e in truth if e["type"] in SCORED_EVENTS]
    used: set[int] = set()
    errors: list[float] = []
    for ev in sorted(truth, key=lambda e: e["t"]):
        best = None
        for i, s in enumerate(scored):
            if i in used or s["type"] != ev["type"]:
                continue
            if ev["t"] - MATCH_BEFORE_S <= s["t"] <= ev["t"] + MATCH_AFTER_S and (
                best is None or abs(s["t"] - ev["t"]) < abs(scored[best]["t"] - ev["t"])
            ):
                best = i
        if best is not None:
            used.add(best)
            errors.append(abs(scored[best]["t"] - ev["t"]))
    tp = len(used)
    return tp, len(scored) - tp, len(truth) - tp, errors


def reacts_to(line: dict[str, Any], event: dict[str, Any]) -> bool:
    """Whether a line can be the companion's reaction to a true event.

    A line on a timer ("tick": the baseline looks every few seconds and speaks whatever it sees) reacts to
    whatever happened since its last look, so any tick line after the event counts — generous to the
    baseline, whose line need not mention the event. An event-driven line (kibitz) reacts to the event that
    set it off: it counts for a true event of the same type, even detected a little early (clips are stored
    at a few frames a second); a line set off by something else (new text, a scene cut) is not a reaction to
    this event, whose miss shows in the recall instead.
    """
    at = _start(line)
    if line.get("first_token_s") is None or at > event["t"] + MATCH_AFTER_S:
        return False
    if line.get("trigger") == "tick":
        return at >= event["t"]
    return line.get("trigger") == event["type"] and at >= event["t"] - MATCH_BEFORE_S


def _start(line: dict[str, Any]) -> float:
    """The clip time a line's latencies count from: when what it reacts to was seen (its tick, for the baseline)."""
    return float(line.get("event_t", line["t"]))


def reaction_latencies(truth: list[dict[str, Any]], lines: list[dict[str, Any]]) -> tuple[list[float], list[float]]:
    """For each true event, the first line that reacts to it (see `reacts_to`): seconds from the event to that
    line's first token, and to its end. An event no line reacts to has no latency: it counts as missed (the
    `reacted` metric), so a stack that says little cannot look fast."""
    first, full = [], []
    for ev in truth:
        later = [line for line in lines if reacts_to(line, ev)]
        if later:
            line = min(later, key=_start)
            wait = max(0.0, _start(line) - ev["t"])
            first.append(wait + line["first_token_s"])
            full.append(wait + (line.get("total_s") or line["first_token_s"]))
    return first, full


@TASKS.decorator("events")
class Events(Task):
    name = "events"
    item_kind = "clip"
    help = "Which events happened in a clip, and when (deaths, kills, level changes, captures...)."
    metrics = (
        Metric("precision", "precision", True, "reported events that really happened (scored types only)", True),
        Metric("recall", "recall", True, "true events reported within -1 s..+6 s", True),
        Metric("f1", "f1", True, "harmonic mean of the two", True),
        Metric("time_error_s", "mean", False, "|reported − true| time of matched events"),
    )

    def run(self, stack: Stack, dataset: Dataset, item: dict[str, Any]) -> dict[str, Any]:
        frames, times = dataset.clip(item)
        return stack.watch(frames, times, ItemView.of(item))

    def score(self, output: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
        truth = [e for e in item["events"] if e["type"] in SCORED_EVENTS]
        tp, fp, fn, errors = match_events(truth, output.get("events", []))
        first, full = reaction_latencies(truth, output.get("lines", []))
        return {
            "tp": tp,
            "fp": fp,
            "fn": fn,
            "time_error_s": float(np.mean(errors)) if errors else None,
            "first_token_s": first,
            "line_s": full,
            "reacted": len(first),
            "true_events": len(truth),
            "lines": len(output.get("lines", [])),
        }


@TASKS.decorator("latency")
class Latency(Task):
    name = "latency"
    item_kind = "clip"
    source = "events"
    help = "Event → the companion's first token and → its full line (from the events task's clips)."
    metrics = (
        Metric("reacted", "reacted", True, "true events some line reacted to (the percentiles are over these)"),
        Metric("first_token_s", "p50", False, "event → first token, median (s)"),
        Metric("first_token_s", "p95", False, "event → first token, 95th percentile (s)"),
        Metric("line_s", "p50", False, "event → end of the line, median (s)"),
        Metric("line_s", "p95", False, "event → end of the line, 95th percentile (s)"),
    )

    def run(self, stack: Stack, dataset: Dataset, item: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError("latency is derived from the events task")

    def score(self, output: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
        return Events().score(output, item)


def mentions(text: str, answer: str) -> bool:
    """The reply names the answer: whole numbers as numbers (12 ≠ 120; "1,531" is 1531), words on word
    boundaries."""
    if re.fullmatch(r"-?\d+", answer):
        plain = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)
        return re.search(rf"(?<![\d.]){re.escape(answer)}(?![\d])", plain) is not None
    return re.search(rf"(?<!\w){re.escape(answer.lower())}(?!\w)", text.lower()) is not None


@cache
def _answer_rules() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """(idioms, negated word) patterns from prompts/answers.yaml."""
    data = yaml.safe_load((resources.files("kibitz.bench") / "prompts" / "answers.yaml").read_text(encoding="utf-8"))
    idioms = "|".join(re.escape(i) for i in sorted(data["idioms"], key=len, reverse=True))
    negations = "|".join(re.escape(n) for n in sorted(data["negations"], key=len, reverse=True))
    return (
        re.compile(rf"(?<!\w)(?:{idioms})(?!\w)"),
        re.compile(rf"(?:(?<!\w)|(?<=n))(?:{negations})\s+(?:the\s+|a\s+)?[\w']+"),
    )


def answered(text: str, answers: Sequence[str], options: Sequence[str] = ()) -> bool:
    """The reply gives one of the accepted answers as its answer: not inside an idiom ("No worries!" is not "no",
    "Nice one!" is not "one"), not negated ("not white's turn"), and naming no other of the question's options
    beside it ("white or black" does not answer "whose turn is it?")."""
    idioms, negated = _answer_rules()
    plain = text.lower().replace("\u2019", "'")
    plain = negated.sub(" ", idioms.sub(" ", plain))
    if not any(mentions(plain, a) for a in answers):
        return False
    wrong = [o for o in options if o not in answers and mentions(plain, o)]
    return not wrong


@TASKS.decorator("questions")
class Questions(Task):
    name = "questions"
    item_kind = "question"
    help = 'Questions about the state ("how many lives left?", "what killed me?") with exact answers.'
    metrics = (
        Metric("accuracy", "mean", True, "the reply contains the right answer", True),
        Metric("first_token_s", "p50", False, "question → first token, median (s)"),
    )

    def run(self, stack: Stack, dataset: Dataset, item: dict[str, Any]) -> dict[str, Any]:
        return stack.answer(dataset.image(item), item["question"], ItemView.of(item))

    def score(self, output: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
        text = output.get("text", "")
        first = output.get("first_token_s")
        return {
            "accuracy": float(answered(text, item["answers"], item.get("options", ()))),
            "first_token_s": [] if first is None else [first],
        }


@TASKS.decorator("advice")
class Advice(Task):
    name = "advice"
    item_kind = "advice"
    help = "Advice with an answer key: Stockfish's top moves, a useful next Crafter achievement, a real threat."
    metrics = (Metric("useful", "mean", True, "the advice names something in the answer key"),)

    def run(self, stack: Stack, dataset: Dataset, item: dict[str, Any]) -> dict[str, Any]:
        return stack.answer(dataset.image(item), item["question"], ItemView.of(item))

    def score(self, output: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
        text = output.get("text", "")
        # "Qxd5+" is named as well by "Qxd5": check and mate marks are not needed; "watch out for the Goombas" names
        # the Goomba: a plural counts.
        good = [g.rstrip("+#") for g in item["good"] if g.rstrip("+#")]
        return {"useful": float(any(mentions(text, form) for g in good for form in _forms(g)))}


def _forms(name: str) -> tuple[str, ...]:
    """A name as a reply may write it: itself, and for a word, its plural ("Goombas", "Bro's" aside)."""
    if not re.search(r"[A-Za-z]$", name) or re.fullmatch(r"[a-h][1-8]|[NBRQK]?[a-h]?x?[a-h][1-8]|O-O(-O)?", name):
        return (name,)
    return (name, name + "s", name + "es")


DEFAULT_TASKS = ("recognition", "events", "latency", "questions", "advice")
