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
    perception: Annotated[str, typer.Option(help="ram (true state) or pixels (the picture only).")] = "ram",
    out: Annotated[Path | None, typer.Option(help="Also write the figures as JSON here.")] = None,
) -> None:
    """Event detection on Super Mario Bros. against the RAM truth: caught, missed, extra."""
    from kibitz.bench.core_loop import detection_bench

    reports = detection_bench(seconds, seed, fps, perception)
    table = Table(
        "game",
        "event",
        "truth",
        "detected",
        "caught",
        "missed",
        "extra",
        "mean lead s",
        title=f"event detection from {perception} vs RAM truth ({seconds:.0f} s of play)",
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


@bench_app.command()
def perception(
    train_s: Annotated[float, typer.Option(help="Seconds of play per game to learn from (seed 0 and 2).")] = 300.0,
    test_s: Annotated[float, typer.Option(help="Seconds of play per game to score on (seed 1).")] = 120.0,
    games: Annotated[str, typer.Option(help="Comma-separated game ids.")] = ",".join(
        ("smb", "breakout", "space_invaders", "seaquest", "ms_pacman", "freeway", "riverraid", "asteroids")
    ),
    embedder: Annotated[str, typer.Option(help="efficientnet-lite0 | thumbnail.")] = "efficientnet-lite0",
    seed: Annotated[int, typer.Option(help="Learn from runs seed and seed+2, score on run seed+1.")] = 0,
    out: Annotated[Path | None, typer.Option(help="Also write the figures as JSON here.")] = None,
) -> None:
    """Pixels-only perception vs RAM truth: HUD fields, game and scene (seen and unseen games), cost per frame."""
    from kibitz.bench.perception import cost_bench, hud_bench, recognition_bench
    from kibitz.perception.classifier import EMBEDDERS
    from kibitz.perception.hud import hud_spec_path

    ids = tuple(g.strip() for g in games.split(",") if g.strip())
    rows: list[dict[str, Any]] = []
    hud_table = Table("game", "HUD field", "frames shown", "exact (smoothed)", "exact (raw)", title="HUD from pixels")
    with console.status("reading HUDs...") as status:
        for g in ids:
            if hud_spec_path(g) is None:
                continue
            status.update(f"{g}: learning the HUD font, then reading {test_s:.0f} s of a new run")
            r = hud_bench(g, train_s, test_s, seed=seed)
            for name in r.shown:
                raw = r.raw_exact[name] / r.shown[name]
                hud_table.add_row(g, name, str(r.shown[name]), f"{r.rate(name):.2%}", f"{raw:.2%}")
                rows.append({"task": "hud", "game": g, "field": name, "exact": r.rate(name), "raw": raw})
            hud_table.add_row(
                g, "[b]all[/b]", str(sum(r.shown.values())), f"[b]{r.overall:.2%}[/b]", "", end_section=True
            )
    console.print(hud_table)
    model = EMBEDDERS.get(embedder)()
    with console.status("recognition...") as status:
        rec = recognition_bench(model, ids, 60.0, 60.0, seed=seed, progress=lambda m: status.update(m))
    table = Table(
        "game",
        "frames",
        "game (seen)",
        "scene (seen)",
        "scene (unseen)",
        "game (unseen, 5 shots)",
        title=f"Recognition ({embedder}, {rec.prototypes} prototypes)",
    )
    keys = ("seen_game", "seen_scene", "unseen_scene", "unseen_game_5shot")
    for g, v in rec.per_game.items():
        table.add_row(g, str(int(v["frames"])), *(f"{v[k]:.1%}" for k in keys))
        rows.append({"task": "recognition", "game": g, **v})
    table.add_row("[b]all[/b]", "", *(f"[b]{rec.mean(k):.1%}[/b]" for k in keys))
    console.print(table)
    if rec.confusions:
        console.print(
            "[dim]most common scene mistakes: "
            + "; ".join(f"{k} ×{n}" for k, n in rec.confusions.most_common(5))
            + "[/dim]"
        )
    with console.status("timing one thread..."):
        costs = cost_bench(model)
    cost_table = Table("frame", "per frame (ms)", "fps", "worst frame (ms)", "parts (ms)", title="Cost, one thread")
    for c in costs:
        parts = ", ".join(f"{k} {v:.1f}" for k, v in c.parts_ms.items())
        cost_table.add_row(c.name, f"{c.per_frame_ms:.1f}", f"{c.fps:.0f}", f"{c.worst_frame_ms:.1f}", parts)
        rows.append(
            {
                "task": "cost",
                "frame": c.name,
                "per_frame_ms": c.per_frame_ms,
                "worst_ms": c.worst_frame_ms,
                **{f"{k}_ms": v for k, v in c.parts_ms.items()},
            }
        )
    console.print(cost_table)
    _save(out, rows)
