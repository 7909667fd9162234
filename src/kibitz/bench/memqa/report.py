"""The memory benchmark's results as JSON and one self-contained HTML page (plots inlined as PNG)."""

from __future__ import annotations

import html
import json
import time
from pathlib import Path
from typing import Any

from kibitz.bench.memqa.generate import LANGUAGES, TYPES
from kibitz.bench.report import COLOURS, CSS, _png, _table

STACKS = ("kibitz", "baseline")
STACK_NAMES = {"kibitz": "kibitz (top-5 memories)", "baseline": "full history"}


def _pct(value: Any) -> str:
    return "–" if value is None else f"{value:.1%}"


def _num(value: Any, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _bars(groups: list[str], series: dict[str, list[float | None]], title: str, ylabel: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.6))
    width = 0.8 / max(1, len(series))
    for s, (label, values) in enumerate(series.items()):
        xs = [i + s * width for i in range(len(groups))]
        heights = [v or 0.0 for v in values]
        ax.bar(xs, heights, width, label=label, color=COLOURS[s % len(COLOURS)])
        for x, v in zip(xs, values, strict=True):
            if v is not None:
                ax.text(x, v + 0.01, f"{v:.0%}", ha="center", fontsize=7)
    ax.set_xticks([i + width * (len(series) - 1) / 2 for i in range(len(groups))])
    ax.set_xticklabels(groups, fontsize=8)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return _png(fig)


def render_html(result: dict[str, Any]) -> str:
    recall, counts, cfg, timings = result["recall"], result["counts"], result["config"], result["timings"]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>kibitz memory-qa</title>",
        f"<style>{CSS}</style></head><body>",
        "<h1>kibitz bench memory-qa</h1>",
        f"<p class='sub'>{counts['players']} synthetic players ({counts['korean_players']} Korean-speaking, "
        f"{counts['bilingual_players']} bilingual), {counts['sessions']} sessions, {counts['memories']} memories, "
        f"{counts['questions']} questions; seed {cfg['seed']}; wall time {timings['total_s']:.0f} s; "
        f"{html.escape(result.get('finished', ''))}</p>",
        "<h2>Recall@5 of the supporting memory</h2>",
    ]
    held = result.get("held_out", {})
    parts.append(
        "<p>Each question is asked in the benchmark's words (memory_qa_questions.yaml; kibitz's question words in "
        "memory/data/topics.yaml were written knowing them) and again in each held-out set of "
        "memory_qa_paraphrases.yaml: <i>dev</i>, written after the question words, its misses looked at while the "
        "search mechanism was improved; <i>test</i>, scored only once the search was final.</p>"
    )
    header, rows = _recall_rows(recall, {w: h["recall"] for w, h in held.items()}, "<b>{}</b>", split=True)
    parts.append(_table(header, rows))
    series = {la: [recall["by_type_lang"][t][la]["value"] for t in TYPES] for la in LANGUAGES}
    series |= {f"{w} words": [h["recall"]["by_type"][t]["value"] for t in TYPES] for w, h in held.items()}
    parts.append(_bars(list(TYPES), series, "Recall@5 by question type", "Recall@5"))
    ms = result["search_ms"]
    parts.append(
        f"<p>Search (query embedding included): p50 {ms['p50']:.1f} ms, p95 {ms['p95']:.1f} ms. Ingestion: "
        f"{counts['steps']} events and messages written in {timings['ingest_s']:.2f} s, "
        f"{counts['embedded']} memories embedded in {timings['embed_s']:.1f} s.</p>"
    )
    miss = result["misses"]
    parts.append(
        f"<h3>Why questions missed</h3><p>{miss['n']} misses: {miss['not_stored']} never stored (nothing kibitz "
        f"wrote holds the answer: extraction or tallies), {miss['ranked_lower']} stored but ranked below 5 "
        f"(median rank {miss['ranked_lower_median_rank']}).</p>"
    )
    kinds = recall["by_kind"]
    kind_rows = [
        [
            k,
            str(kinds[k]["n"]),
            _pct(kinds[k]["value"]),
            str(miss["by_kind"].get(k, {}).get("not_stored", 0)),
            str(miss["by_kind"].get(k, {}).get("ranked_lower", 0)),
        ]
        for k in kinds
    ]
    parts.append(_table(["kind", "n", "Recall@5", "not stored", "ranked lower"], kind_rows))
    for words in ["", *held]:
        examples = [q for q in result["questions"] if _missed(q, words)][:40]
        if not examples:
            continue
        ex_rows = []
        for q in examples:
            found = q["held_out"][words] if words else q
            text = q["reworded"][words] if words else q["text"]
            ex_rows.append(
                [
                    html.escape(q["kind"]),
                    html.escape(text),
                    html.escape(" + ".join(q["support"])),
                    "not stored" if not q["stored"] else f"rank {found['full_rank']}",
                    "<br>".join(html.escape(t) for t in found["top"]),
                ]
            )
        title = f" in the {words} words" if words else ""
        parts.append(f"<details><summary>Missed questions{title} (first 40) with their top 5</summary>")
        parts.append(_table(["kind", "question", "support", "why", "top 5"], ex_rows, left=5) + "</details>")
    answers = result.get("answers")
    if answers:
        parts.append(_answers(answers))
    parts.append("</body></html>")
    return "".join(parts)


def _missed(question: dict[str, Any], words: str) -> bool:
    if not words:
        return question["rank"] is None
    return words in question.get("held_out", {}) and question["held_out"][words]["rank"] is None


def _recall_rows(
    recall: dict[str, Any], held: dict[str, dict[str, Any]], bold: str, split: bool = False
) -> tuple[list[str], list[list[str]]]:
    """Recall@5 by type × language (n) in the benchmark's words, then each held-out set's (by language too when
    `split`, else overall)."""
    header = ["type", *(f"{la} (n)" for la in LANGUAGES), "all"]
    for words in held:
        header += [*(f"{words} {la}" for la in LANGUAGES), f"{words} all"] if split else [f"{words} words"]

    def cells(r: dict[str, Any], t: str | None, by_lang: bool = True) -> list[str]:
        every = _pct((r["by_type"][t] if t else r["all"])["value"])
        every = bold.format(every) if t is None else every
        if not by_lang:
            return [every]
        langs = [r["by_type_lang"][t][la] if t else r["by_lang"][la] for la in LANGUAGES]
        return [*(f"{_pct(c['value'])} ({c['n']})" for c in langs), every]

    rows = []
    for t in [*TYPES, None]:
        row = [t or bold.format("all"), *cells(recall, t)]
        for r in held.values():
            row += cells(r, t, split)
        rows.append(row)
    return header, rows


def _answers(answers: dict[str, Any]) -> str:
    parts = [
        f"<h2>Answer accuracy: {html.escape(answers['model'])}, {answers['n']} questions in the "
        f"{html.escape(answers.get('words', 'bench'))} words</h2>",
        f"<p>Context {answers['n_ctx']} tokens, answers up to {answers['max_tokens']} tokens, temperature 0. The "
        "full-history baseline is the same model shown every session's events and messages, the oldest cut "
        f"to fit: {answers['baseline_history']['truncated']} of {answers['n']} prompts were cut, keeping "
        f"{_pct(answers['baseline_history']['kept_share_mean'])} of the lines on average.</p>",
    ]
    header = ["", *(STACK_NAMES[s] for s in STACKS)]
    rows = [["<b>accuracy</b>", *(f"<b>{_pct(answers[s]['accuracy']['all']['value'])}</b>" for s in STACKS)]]
    for t in TYPES:
        rows.append([t, *(_pct(answers[s]["accuracy"]["by_type"][t]["value"]) for s in STACKS)])
    for la in LANGUAGES:
        rows.append([la, *(_pct(answers[s]["accuracy"]["by_lang"][la]["value"]) for s in STACKS)])
    rows.append(["prompt tokens (mean)", *(_num(answers[s]["prompt_tokens_mean"], 0) for s in STACKS)])
    rows.append(["answer latency mean / p95 (s)", *(_latency(answers[s]) for s in STACKS)])
    parts.append(_table(header, rows))
    series = {STACK_NAMES[s]: [answers[s]["accuracy"]["by_type"][t]["value"] for t in TYPES] for s in STACKS}
    parts.append(_bars(list(TYPES), series, "Answer accuracy by question type", "accuracy"))
    detail = [
        [
            html.escape(r["kind"]),
            html.escape(r["question"]),
            html.escape(r["truth"]),
            *(f"{'✓' if r[s]['correct'] else '✗'} {html.escape(r[s]['answer'])}" for s in STACKS),
        ]
        for r in answers["rows"]
    ]
    parts.append("<details><summary>Every answer</summary>")
    parts.append(_table(["kind", "question", "truth", *(STACK_NAMES[s] for s in STACKS)], detail, left=5))
    parts.append("</details>")
    return "".join(parts)


def _latency(figures: dict[str, Any]) -> str:
    return f"{_num(figures['latency_mean_s'], 2)} / {_num(figures['latency_p95_s'], 2)}"


def write_results(result: dict[str, Any], out: Path) -> tuple[Path, Path]:
    """results.json and report.html in `out` (written whole, then renamed into place)."""
    out.mkdir(parents=True, exist_ok=True)
    result.setdefault("finished", time.strftime("%Y-%m-%d %H:%M:%S"))
    paths = (out / "results.json", out / "report.html")
    texts = (json.dumps(result, indent=1, ensure_ascii=False), render_html(result))
    for path, text in zip(paths, texts, strict=True):
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    return paths


def _interval(rate: dict[str, Any]) -> str:
    ci = rate.get("ci95")
    if not ci:
        return f"– ({rate.get('n', 0)})"
    return f"{_pct(ci[0])}–{_pct(ci[1])} ({rate['hits']} of {rate['n']})"


def rich_tables(result: dict[str, Any]) -> list[Any]:
    """The figures as rich tables for the terminal."""
    from rich.table import Table

    recall, miss, ms = result["recall"], result["misses"], result["search_ms"]
    held = result.get("held_out", {})
    header, rows = _recall_rows(recall, {w: h["recall"] for w, h in held.items()}, "[b]{}[/b]")
    table = Table(*header, title=f"Recall@5 of the supporting memory ({result['counts']['questions']} questions)")
    for row in rows:
        table.add_row(*row)
    table.caption = (
        f"search p50 {ms['p50']:.1f} ms, p95 {ms['p95']:.1f} ms · misses: {miss['not_stored']} never stored, "
        f"{miss['ranked_lower']} ranked lower (median rank {miss['ranked_lower_median_rank']})"
    )
    for words, h in held.items():
        table.caption += f"; {words} words: {h['misses']['ranked_lower']} ranked lower"
    tables = [table]
    answers = result.get("answers")
    if answers:
        at = Table(
            "",
            *(STACK_NAMES[s] for s in STACKS),
            title=f"Answer accuracy, {answers['model']} ({answers['n']} questions, "
            f"{answers.get('words', 'bench')} words)",
        )
        at.add_row("[b]accuracy[/b]", *(f"[b]{_pct(answers[s]['accuracy']['all']['value'])}[/b]" for s in STACKS))
        at.add_row("95 % interval (n)", *(_interval(answers[s]["accuracy"]["all"]) for s in STACKS))
        for t in TYPES:
            at.add_row(t, *(_pct(answers[s]["accuracy"]["by_type"][t]["value"]) for s in STACKS))
        for la in LANGUAGES:
            at.add_row(la, *(_pct(answers[s]["accuracy"]["by_lang"][la]["value"]) for s in STACKS))
        at.add_row("prompt tokens (mean)", *(_num(answers[s]["prompt_tokens_mean"], 0) for s in STACKS))
        at.add_row("latency mean / p95 s", *(_latency(answers[s]) for s in STACKS))
        tables.append(at)
    return tables
