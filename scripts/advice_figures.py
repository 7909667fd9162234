"""The advice figures over several bench runs (one per dataset seed): useful share per stack, seen and unseen games
apart, per game, with Wilson 95 % intervals, and kibitz's ratio to the baseline with a paired bootstrap interval
over items.

    .venv/bin/python scripts/advice_figures.py RESULTS.sqlite [RESULTS.sqlite ...]

Each RESULTS file is what `kibitz bench run --seed N --tasks advice --no-judge --results RESULTS` wrote (docs/bench.md,
"Advice"). A failed item counts as not useful.
"""

from __future__ import annotations

import json
import random
import sqlite3
import sys
from collections import defaultdict

from kibitz.bench.stats import wilson

BOOTSTRAP = 2000


def rows(paths: list[str]) -> dict[tuple[str, str], dict[str, float]]:
    """(seed file, item) → {stack: useful} with the item's game and split."""
    out: dict[tuple[str, str], dict[str, float]] = {}
    meta: dict[tuple[str, str], tuple[str, str]] = {}
    for path in paths:
        db = sqlite3.connect(path)
        for item, stack, game, split, status, scores in db.execute(
            "SELECT item, stack, game, split, status, scores FROM results WHERE task='advice'"
        ):
            useful = json.loads(scores).get("useful", 0.0) if status == "ok" and scores else 0.0
            name = "kibitz" if stack.startswith("kibitz") else "baseline"
            out.setdefault((path, item), {})[name] = float(useful)
            meta[(path, item)] = (game, split)
    for key, (game, split) in meta.items():
        out[key]["game"], out[key]["split"] = game, split  # type: ignore[assignment]
    return out


def share(values: list[float]) -> str:
    if not values:
        return "– n=0"
    k = round(sum(values))
    low, high = wilson(k, len(values))
    return f"{k / len(values):.0%} ({low:.0%}–{high:.0%}) n={len(values)}"


def ratio(pairs: list[tuple[float, float]]) -> str:
    """kibitz ÷ baseline, with a paired bootstrap 95 % interval ("∞" where the baseline scored nothing)."""

    def r(sample: list[tuple[float, float]]) -> float:
        base, mine = sum(b for _, b in sample), sum(k for k, _ in sample)
        if base == 0:
            return float("nan") if mine == 0 else float("inf")
        return mine / base

    whole = r(pairs)
    if not pairs or whole != whole:  # nothing useful from either: no ratio
        return "–"
    rng = random.Random(0)
    draws = sorted(x for x in (r([rng.choice(pairs) for _ in pairs]) for _ in range(BOOTSTRAP)) if x == x)
    low, high = draws[int(0.025 * len(draws))], draws[int(0.975 * len(draws)) - 1]
    fmt = lambda x: "∞" if x == float("inf") else f"{x:.1f}×"  # noqa: E731
    return f"{fmt(whole)} ({fmt(low)}–{fmt(high)})"


def main() -> None:
    paths = sys.argv[1:]
    if not paths:
        sys.exit(__doc__)
    data = rows(paths)
    groups: dict[str, list[dict[str, float]]] = defaultdict(list)
    for values in data.values():
        if "kibitz" in values and "baseline" in values:
            groups["all"].append(values)
            groups[str(values["split"])].append(values)
            groups[f"  {values['game']}"].append(values)
    print(f"advice · useful, {len(paths)} runs: {', '.join(paths)}")
    print(f"{'items':<12} {'kibitz':<28} {'baseline':<28} kibitz ÷ baseline")
    for name in ["all", "seen", "unseen", *sorted(k for k in groups if k.startswith("  "))]:
        items = groups.get(name, [])
        pairs = [(v["kibitz"], v["baseline"]) for v in items]
        print(f"{name:<12} {share([k for k, _ in pairs]):<28} {share([b for _, b in pairs]):<28} {ratio(pairs)}")


if __name__ == "__main__":
    main()
