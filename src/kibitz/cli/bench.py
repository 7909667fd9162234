"""`kibitz bench`: benchmarks that print figures (targets live here, not in timed unit tests)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

bench_app = typer.Typer(
    help="Benchmarks that print figures: latency, loop rate, event detection.", no_args_is_help=True
)
console = Console(highlight=False)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return "-" if value is None else str(value)


def _save(out: Path | None, rows: list[dict[str, Any]]) -> None:
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(rows, indent=2))
        console.print(f"[dim]saved {out}[/dim]")


@bench_app.command()
def latency(
    seconds: Annotated[float, typer.Option(help="Seconds of real-time play.")] = 180.0,
    game: Annotated[str, typer.Option(help="Game id.")] = "smb",
    backend: Annotated[str | None, typer.Option(help="llamacpp | openai.")] = None,
    model: Annotated[str | None, typer.Option(help="Model name or path.")] = None,
    base_url: Annotated[str | None, typer.Option(help="OpenAI-compatible server URL.")] = None,
    threads: Annotated[int | None, typer.Option(help="Model threads (default 1).")] = None,
    out: Annotated[Path | None, typer.Option(help="Also write the figures as JSON here.")] = None,
    show_lines: Annotated[bool, typer.Option("--show-lines", help="Print the run's events and lines.")] = False,
) -> None:
    """Event → first token (p50/p95), loop rate and frame gaps while the model speaks, peak RAM."""
    from kibitz.bench.core_loop import latency_bench
    from kibitz.core.config import load_config

    overrides = {
        "game": game,
        "llm.backend": backend,
        "llm.model": model,
        "llm.base_url": base_url,
        "llm.n_threads": threads,
    }
    report = latency_bench(load_config(None, {k: v for k, v in overrides.items() if v is not None}), seconds)
    table = Table("figure", "value", title=f"kibitz core loop — {report.backend}")
    for key, value in report.to_json().items():
        if key != "transcript":
            table.add_row(key, _fmt(value))
    console.print(table)
    if show_lines:
        for row in report.transcript:
            if row["kind"] == "event":
                console.print(f"[dim]{row['t']:7.1f}s · {row['type']}: {row['summary']}[/dim]")
            else:
                console.print(f"         › {row['text']} [dim]({row['first_token_s']}s)[/dim]")
    _save(out, [report.to_json()])


@bench_app.command()
def events(
    seconds: Annotated[float, typer.Option(help="Seconds of game time (run as fast as possible).")] = 300.0,
    seed: Annotated[int, typer.Option(help="Seed for the built-in player.")] = 0,
    fps: Annotated[float, typer.Option(help="Frames per second handed to perception.")] = 60.0,
    out: Annotated[Path | None, typer.Option(help="Also write the figures as JSON here.")] = None,
) -> None:
    """Event detection on Super Mario Bros. against the RAM truth: caught, missed, extra."""
    from kibitz.bench.core_loop import detection_bench

    reports = detection_bench(seconds, seed, fps)
    table = Table(
        "game",
        "event",
        "truth",
        "detected",
        "caught",
        "missed",
        "extra",
        "mean lead s",
        title=f"event detection vs RAM truth ({seconds:.0f} s of play)",
    )
    for r in reports:
        table.add_row(
            r.game,
            r.kind,
            str(r.truth),
            str(r.detected),
            str(r.caught),
            str(r.missed),
            str(r.extra),
            _fmt(r.mean_lead_s),
        )
    console.print(table)
    console.print(
        f"loop capacity: {reports[0].loop_fps:.0f} frames/s (emulator + perception + tracking, unpaced; "
        "the game needs 60)"
    )
    _save(out, [r.to_json() for r in reports])
