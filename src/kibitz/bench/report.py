"""`kibitz bench report`: one self-contained HTML file (tables, and plots embedded as PNG) from a results store."""

from __future__ import annotations

import base64
import html
import io
import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

from kibitz.bench.stacks import load_prompts

COLOURS = ("#2563eb", "#f97316", "#16a34a", "#dc2626", "#9333ea", "#0891b2")

CSS = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1200px; color: #1f2937; padding: 0 1rem; }
h1 { margin-bottom: 0; } .sub { color: #6b7280; margin-top: .2rem; }
table { border-collapse: collapse; margin: .6rem 0 1.4rem; font-size: .9rem; }
th, td { border: 1px solid #e5e7eb; padding: .3rem .55rem; text-align: right; }
th { background: #f3f4f6; } td.l, th.l { text-align: left; }
.good { color: #15803d; font-weight: 600; } .bad { color: #b91c1c; font-weight: 600; }
img { max-width: 100%; } pre { background: #f9fafb; padding: .8rem; white-space: pre-wrap; font-size: .85rem; }
details { margin: .5rem 0 1rem; } .muted { color: #6b7280; }
"""


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return html.escape(str(value))


def _short(stack: str) -> str:
    return stack.split("[")[0]


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return f'<img alt="plot" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> str:
    head = "".join(f'<th class="{"l" if i < left else ""}">{h}</th>' for i, h in enumerate(header))
    body = "".join(
        "<tr>" + "".join(f'<td class="{"l" if i < left else ""}">{c}</td>' for i, c in enumerate(r)) + "</tr>"
        for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _figure_value(summary: dict[str, Any], task: str, metric: str, agg: str, stack: str, split: str) -> Any:
    for f in summary["figures"]:
        key = (f["task"], f["metric"], f["aggregation"], f["stack"], f["split"])
        if key == (task, metric, agg, stack, split):
            return f
    return None


def _interval(ci: Sequence[float] | None, digits: int = 3) -> str:
    return f" <span class='muted'>[{_fmt(ci[0], digits)}–{_fmt(ci[1], digits)}]</span>" if ci else ""


def figure_text(f: dict[str, Any]) -> str:
    """A figure's value with its 95 % interval, and for a share of events "n of m"."""
    text = _fmt(f["value"]) + _interval(f.get("ci95"))
    if f.get("counts"):
        text += f" <span class='muted'>({f['counts'][0]} of {f['counts'][1]})</span>"
    return text


def _measured(row: dict[str, Any] | None) -> float:
    """A figure's value to draw, NaN when it has no items (n = 0): no bar, never a bar at 0."""
    if row is None or row.get("value") is None or row.get("n") == 0:
        return math.nan
    return float(row["value"])


def _bars(ax: Any, xs: list[float], values: list[float], width: float, **style: Any) -> None:
    """Bars for measured values; where nothing was measured, an "n=0" mark instead of a bar."""
    ax.bar(xs, values, width, **style)
    for x, v in zip(xs, values, strict=True):
        if math.isnan(v):
            ax.text(x, 0.02, "n=0", rotation=90, fontsize=6, ha="center", va="bottom", color="#888888")


def understanding_plot(summary: dict[str, Any]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stacks = summary["stacks"]
    keys = sorted(
        {(f["task"], f["metric"], f["aggregation"]) for f in summary["figures"] if f["understanding"]},
        key=lambda k: (k[0], k[1]),
    )
    if not keys or not stacks:
        return ""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4), sharey=True)
    for ax, split in zip(axes, ("all", "seen", "unseen"), strict=True):
        width = 0.8 / len(stacks)
        for s, stack in enumerate(stacks):
            values = []
            for task, metric, agg in keys:
                values.append(_measured(_figure_value(summary, task, metric, agg, stack, split)))
            _bars(
                ax,
                [i + s * width for i in range(len(keys))],
                values,
                width,
                label=_short(stack),
                color=COLOURS[s % len(COLOURS)],
            )
        ax.set_xticks([i + width * (len(stacks) - 1) / 2 for i in range(len(keys))])
        ax.set_xticklabels([f"{t}\n{m}" for t, m, _ in keys], fontsize=8)
        ax.set_title(f"{split} games")
        ax.set_ylim(0, 1.05)
    axes[0].set_ylabel("score (higher is better)")
    axes[0].legend()
    return _png(fig)


def per_game_plot(summary: dict[str, Any]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stacks = summary["stacks"]
    understanding = {(f["task"], f["metric"]) for f in summary["figures"] if f["understanding"]}
    keys = sorted(understanding)
    games = sorted({g["game"] for g in summary["per_game"]})
    if not keys or not games:
        return ""
    cols = 3
    rows = math.ceil(len(keys) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(15, 3.2 * rows), squeeze=False)
    for ax, (task, metric) in zip(axes.flat, keys, strict=False):
        width = 0.8 / len(stacks)
        for s, stack in enumerate(stacks):
            values = []
            for game in games:
                row = next(
                    (
                        g
                        for g in summary["per_game"]
                        if (g["task"], g["metric"], g["stack"], g["game"]) == (task, metric, stack, game)
                    ),
                    None,
                )
                values.append(_measured(row))
            _bars(ax, [i + s * width for i in range(len(games))], values, width, color=COLOURS[s % len(COLOURS)])
        ax.set_xticks([i + width * (len(stacks) - 1) / 2 for i in range(len(games))])
        ax.set_xticklabels(games, fontsize=7, rotation=30)
        ax.set_title(f"{task} · {metric}", fontsize=9)
        ax.set_ylim(0, 1.05)
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis("off")
    fig.legend([_short(s) for s in stacks], loc="upper right")
    fig.tight_layout()
    return _png(fig)


def latency_plot(summary: dict[str, Any]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    samples = summary["latency"]
    if not any(v["first_token_s"] for v in samples.values()):
        return ""
    fig, axes = plt.subplots(1, 2, figsize=(13, 3.8))
    keys = (("first_token_s", "event → first token"), ("line_s", "event → full line"))
    for ax, (key, title) in zip(axes, keys, strict=True):
        for s, (stack, values) in enumerate(samples.items()):
            v = np.sort(np.array(values[key]))
            if len(v):
                colour = COLOURS[s % len(COLOURS)]
                ax.step(v, np.arange(1, len(v) + 1) / len(v), where="post", color=colour, label=_short(stack))
                ax.axvline(float(np.percentile(v, 95)), color=colour, ls=":", lw=1)
        ax.set_title(f"{title} (dotted: p95)")
        ax.set_xlabel("seconds")
        ax.set_ylabel("share of events")
        ax.legend(fontsize=8)
    return _png(fig)


def tradeoff_plot(summary: dict[str, Any]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = []
    for stack in summary["stacks"]:
        scores = [
            f["value"]
            for f in summary["figures"]
            if f["stack"] == stack and f["split"] == "all" and f["understanding"] and f["value"] is not None
        ]
        p95 = _figure_value(summary, "latency", "first_token_s", "p95", stack, "all")
        if scores and p95 and p95["value"] is not None:
            points.append((stack, p95["value"], sum(scores) / len(scores)))
    if not points:
        return ""
    fig, ax = plt.subplots(figsize=(6, 4))
    for s, (stack, x, y) in enumerate(points):
        ax.scatter([x], [y], s=80, color=COLOURS[s % len(COLOURS)])
        ax.annotate(_short(stack), (x, y), textcoords="offset points", xytext=(6, 6))
    ax.set_xlabel("event → first token, p95 (s, lower is better)")
    ax.set_ylabel("mean understanding score")
    ax.set_xlim(left=0)
    ax.set_ylim(0, 1.05)
    ax.set_title("accuracy vs latency")
    return _png(fig)


def _breakdown_tables(summary: dict[str, Any]) -> str:
    """Events by type and recognition by true scene (seen and unseen games apart), per stack."""
    out = []
    events = [r for r in summary.get("per_event_type", []) if r["split"] != "all"]
    if events:
        rows = [
            [
                html.escape(r["type"]),
                _short(r["stack"]),
                r["split"],
                str(r["true"]),
                str(r["reported"]),
                str(r["matched"]),
                _fmt(r["precision"]),
                _fmt(r["recall"]),
                _fmt(r["f1"]),
            ]
            for r in sorted(events, key=lambda r: (r["split"], r["type"], r["stack"]))
        ]
        header = ["event", "stack", "split", "true", "reported", "matched", "precision", "recall", "F1"]
        out.append("<h3>events by type</h3>" + _table(header, rows))
    scenes = [r for r in summary.get("per_scene", []) if r["split"] != "all"]
    if scenes:
        rows = [
            [
                html.escape(r["scene"]),
                _short(r["stack"]),
                r["split"],
                str(r["frames"]),
                f"{r['scene_right']} ({r['scene_right'] / r['frames']:.0%})",
                f"{r['game_right']} ({r['game_right'] / r['frames']:.0%})",
            ]
            for r in sorted(scenes, key=lambda r: (r["split"], r["scene"], r["stack"]))
        ]
        out.append(
            "<h3>recognition by true scene</h3>"
            + _table(["scene", "stack", "split", "frames", "scene right", "game right"], rows)
        )
    return "".join(out)


def render_report(summary: dict[str, Any]) -> str:
    """The whole report as one HTML string."""
    stacks = summary["stacks"]
    meta = summary.get("meta", {})
    dataset = summary.get("dataset", {})
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>kibitz bench report</title>",
        f"<style>{CSS}</style></head><body>",
        "<h1>kibitz bench</h1>",
        f"<p class='sub'>dataset seed {_fmt(dataset.get('seed'))}, size {_fmt(dataset.get('size'))}; "
        f"run {html.escape(str(meta.get('finished', '')))}; machine {html.escape(str(meta.get('machine', '')))}</p>",
    ]
    games = dataset.get("games", {})
    parts.append("<h2>Games</h2>")
    parts.append(
        _table(
            ["game", "title", "genre", "split", "seconds played", "items"],
            [
                [
                    html.escape(g),
                    html.escape(i.get("title", "")),
                    html.escape(i.get("genre", "")),
                    html.escape(i.get("split", "")),
                    _fmt(i.get("seconds")),
                    html.escape(", ".join(f"{k} {v}" for k, v in sorted(i.get("items", {}).items()))),
                ]
                for g, i in sorted(games.items())
            ]
            + [[html.escape(g), "", "", "missing", "", html.escape(r)] for g, r in dataset.get("missing", {}).items()],
            left=4,
        )
    )
    parts.append("<h2>Stacks</h2><ul>")
    for stack in stacks:
        parts.append(f"<li><b>{html.escape(stack)}</b> {html.escape(str(meta.get('stacks', {}).get(stack, '')))}</li>")
    parts.append("</ul>")
    comparison = summary.get("comparison", [])
    if comparison:
        parts.append("<h2>kibitz vs the baseline, same run</h2>")
        rows = []
        for c in comparison:
            verdict = "<span class='good'>kibitz</span>" if c["kibitz_better"] else "<span class='bad'>baseline</span>"
            rows.append(
                [
                    f"{c['task']} · {c['metric']} ({c['aggregation']})",
                    _fmt(c["kibitz"]),
                    _fmt(c["baseline"]),
                    _fmt(c["ratio"], 2) + ("×" if c["ratio"] is not None else "") + _interval(c.get("ratio_ci95"), 2),
                    verdict,
                ]
            )
        parts.append(
            "<p class='muted'>Each ratio's 95 % interval is a paired bootstrap over the items both stacks were "
            "scored on (1000 resamples).</p>"
        )
        parts.append(
            _table(
                ["figure", "kibitz", "baseline", "ratio (kibitz's gain), 95 % CI", "better"],
                rows,
            )
        )
    parts.append("<h2>Understanding</h2>")
    parts.append(understanding_plot(summary))
    parts.append(per_game_plot(summary))
    tasks = sorted({f["task"] for f in summary["figures"]})
    for task in tasks:
        figs = [f for f in summary["figures"] if f["task"] == task]
        metrics = sorted({(f["metric"], f["aggregation"], f["higher_is_better"], f["help"]) for f in figs})
        header = ["metric"] + [f"{_short(s)} · {split}" for s in stacks for split in ("all", "seen", "unseen")]
        rows = []
        for metric, agg, higher, help_text in metrics:
            cells = [
                f"{metric} ({agg}, {'↑' if higher else '↓'})<br><span class='muted'>{html.escape(help_text)}</span>"
            ]
            for stack in stacks:
                for split in ("all", "seen", "unseen"):
                    f = _figure_value(summary, task, metric, agg, stack, split)
                    text = figure_text(f) if f else "–"
                    if f and f["n"]:
                        text += f" <span class='muted'>n={f['n']}</span>"
                    if f and f["failed"]:
                        text += f" <span class='bad'>{f['failed']} failed</span>"
                    cells.append(text)
            rows.append(cells)
        parts.append(f"<h3>{html.escape(task)}</h3>" + _table(header, rows))
        per_game = [g for g in summary["per_game"] if g["task"] == task]
        if per_game:
            game_ids = sorted({g["game"] for g in per_game})
            rows = []
            for metric, agg, _, _ in metrics:
                for stack in stacks:
                    cells = [f"{metric} ({agg}) · {_short(stack)}"]
                    for game in game_ids:
                        row = next(
                            (
                                g
                                for g in per_game
                                if (g["metric"], g["aggregation"], g["stack"], g["game"]) == (metric, agg, stack, game)
                            ),
                            None,
                        )
                        cells.append(_fmt(row["value"]) if row else "–")
                    rows.append(cells)
            parts.append(
                f"<details><summary>{html.escape(task)} per game</summary>{_table(['', *game_ids], rows)}</details>"
            )
    parts.append(_breakdown_tables(summary))
    parts.append("<h2>Latency</h2>")
    parts.append(
        "<p>For every true event in a clip: the wait until the first line that reacts to it (for kibitz, from "
        "the moment its detectors saw the event; for the baseline, its next tick) plus that line's measured time "
        "to first token (and to its end). Both stacks are measured over the same true events; an event no line "
        "reacts to is missed, counted in <i>reacted</i> (n of m) and absent from the percentiles. Clips are "
        "replayed as fast as perception takes them while the companion is idle and in real time while it speaks, "
        "and the speak policy runs on the clip's clock; each stage's time is measured on this machine.</p>"
    )
    parts.append(latency_plot(summary))
    parts.append(tradeoff_plot(summary))
    judge = summary.get("judge", {})
    if judge.get("figures"):
        parts.append("<h2>Naturalness and usefulness (LLM judges)</h2>")
        parts.append(f"<p>Judges: {html.escape(', '.join(meta.get('judges', [])) or 'none')}</p>")
        parts.append(
            _table(
                ["stack", "scale", "mean 1-5", "lines graded", "failed"],
                [
                    [html.escape(f["stack"]), f["metric"], _fmt(f["value"], 2), str(f["n"]), str(f["failed"])]
                    for f in judge["figures"]
                ],
                left=2,
            )
        )
        agree = judge.get("agreement", {})
        if agree.get("pairs"):
            rows = [
                [
                    scale,
                    _fmt(agree[scale]["kappa"], 2),
                    _fmt(agree[scale]["exact"], 2),
                    _fmt(agree[scale]["within_one"], 2),
                    str(agree["pairs"]),
                ]
                for scale in ("naturalness", "usefulness")
            ]
            parts.append("<h3>Agreement between the two judges</h3>")
            parts.append(_table(["scale", "quadratic κ", "exact", "within one", "lines"], rows))
        rubric = load_prompts("judge.yaml")["rubric"]
        parts.append(f"<details><summary>The rubric</summary><pre>{html.escape(rubric)}</pre></details>")
    examples = summary.get("examples", [])
    if examples:
        parts.append("<h2>What they said</h2>")
        parts.append(
            _table(
                ["stack", "item", "moment", "line"],
                [
                    [html.escape(e["stack"]), html.escape(e["item"]), html.escape(e["moment"]), html.escape(e["line"])]
                    for e in examples
                ],
                left=4,
            )
        )
    failures = summary.get("failures", [])
    parts.append(f"<h2>Failures ({len(failures)})</h2>")
    if failures:
        reasons = Counter((f["task"], f["stack"], f["error"]) for f in failures)
        parts.append(
            _table(
                ["task", "stack", "reason", "items"],
                [
                    [html.escape(t), html.escape(s), html.escape(str(e)), str(n)]
                    for (t, s, e), n in reasons.most_common()
                ],
                left=3,
            )
        )
    else:
        parts.append("<p>None.</p>")
    parts.append("</body></html>")
    return "\n".join(parts)
