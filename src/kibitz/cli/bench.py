"""`kibitz bench`: benchmarks that print figures (targets live here, not in timed unit tests)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from kibitz.core.errors import KibitzError

bench_app = typer.Typer(
    help=(
        "Benchmarks that print figures. The bench proper: `build` a dataset from real games, `run` kibitz and a "
        "baseline on it (recognition, events, questions, advice, latency, LLM judges), `report` as one HTML file. "
        "Single figures: latency, events, perception."
    ),
    no_args_is_help=True,
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
    memories: Annotated[
        int, typer.Option(help="The player already has this many memories; the companion recalls them (0: off).")
    ] = 0,
) -> None:
    """Event → first token (p50/p95), loop rate and frame gaps while the model speaks, peak RAM; with
    --memories, the same with long-term memory in every prompt."""
    from kibitz.bench.core_loop import latency_bench
    from kibitz.core.config import load_config

    overrides = {
        "game": game,
        "llm.backend": backend,
        "llm.model": model,
        "llm.base_url": base_url,
        "llm.n_threads": threads,
    }
    report = latency_bench(load_config(None, {k: v for k, v in overrides.items() if v is not None}), seconds, memories)
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
    parts: Annotated[
        str,
        typer.Option(
            help="Which parts to run, comma-separated: hud, recognition, open-set, cost, short-screens, labels, "
            "letterbox."
        ),
    ] = "hud,recognition,open-set,cost,short-screens,labels,letterbox",
    open_set: Annotated[
        str,
        typer.Option(help="The open-set split of Atari games kibitz does not know: test (scored) or dev (tuned on)."),
    ] = "test",
    open_set_games: Annotated[
        int | None, typer.Option(help="Only the first N Atari games of the open-set split (a quick check).")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Also write the figures as JSON here.")] = None,
) -> None:
    """Pixels-only perception vs RAM truth: HUD fields, game and scene (seen and unseen games), frames of games
    kibitz does not know (how often one is taken for a known game), cost per frame."""
    from kibitz.bench.perception import recognition_bench
    from kibitz.perception.classifier import EMBEDDERS

    ids = tuple(g.strip() for g in games.split(",") if g.strip())
    wanted = {p.strip() for p in parts.split(",") if p.strip()}
    known = ("hud", "recognition", "open-set", "cost", "short-screens", "labels", "letterbox")
    unknown = wanted - set(known)
    if unknown:
        raise KibitzError(f"Unknown part(s) {', '.join(sorted(unknown))}: choose from {', '.join(known)}.")
    rows: list[dict[str, Any]] = []
    model = EMBEDDERS.get(embedder)()
    if "hud" in wanted:
        _hud_part(ids, train_s, test_s, seed, rows)
    if "recognition" in wanted or "open-set" in wanted:
        with console.status("recognition...") as status:
            rec = recognition_bench(model, ids, 60.0, 60.0, seed=seed, progress=lambda m: status.update(m))
        if "recognition" in wanted:
            _recognition_table(rec, embedder, rows)
        if "open-set" in wanted and rec.bank is not None:
            _open_set_part(model, rec.bank, open_set, rows, open_set_games)
    if "cost" in wanted:
        _cost_part(model, rows)
    if "short-screens" in wanted:
        _short_screen_part(model, rows, open_set)
    if "labels" in wanted:
        _labels_part(model, rows, open_set)
    if "letterbox" in wanted:
        _letterbox_part(model, ids, seed, rows)
    _save(out, rows)


def _hud_part(ids: tuple[str, ...], train_s: float, test_s: float, seed: int, rows: list[dict[str, Any]]) -> None:
    from kibitz.bench.perception import hud_bench
    from kibitz.perception.hud import hud_spec_path

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


def _recognition_table(rec: Any, embedder: str, rows: list[dict[str, Any]]) -> None:
    table = Table(
        "game",
        "frames",
        "game (seen)",
        "scene (seen)",
        "scene (unseen)",
        "game (unseen, 5 shots)",
        "followed (seen)",
        "followed (5 shots)",
        title=f"Recognition ({embedder}, {rec.prototypes} prototypes; one frame at a time, then followed over the run)",
    )
    keys = ("seen_game", "seen_scene", "unseen_scene", "unseen_game_5shot", "seen_followed", "unseen_followed_5shot")
    for g, v in rec.per_game.items():
        table.add_row(g, str(int(v["frames"])), *(f"{v[k]:.1%}" for k in keys))
        rows.append({"task": "recognition", "game": g, **v})
    table.add_row("[b]all[/b]", "", *(f"[b]{rec.mean(k):.1%}[/b]" for k in keys))
    console.print(table)
    _five_shot_scenes(rec.scenes_5shot, rows)
    if rec.confusions:
        console.print(
            "[dim]most common scene mistakes: "
            + "; ".join(f"{k} ×{n}" for k, n in rec.confusions.most_common(5))
            + "[/dim]"
        )


def _five_shot_scenes(tallies: dict[str, list[int]], rows: list[dict[str, Any]]) -> None:
    """The scenes of games added from five pictures, per game and scene, and per scene over all games."""
    from kibitz.bench.stats import wilson

    def cell(k: int, n: int, bold: bool = False) -> str:
        low, high = wilson(k, n)
        rate = f"[b]{k / n:.1%}[/b]" if bold else f"{k / n:.1%}"
        return f"{rate} ({low:.0%}–{high:.0%})"

    table = Table(
        "game",
        "true scene",
        "frames",
        "scene right",
        "game followed, scene right",
        title="Scenes after `games add` with 5 pictures (watched as `kibitz watch` does)",
    )
    by_scene: dict[str, list[int]] = {}
    for key, (right, followed, n) in sorted(tallies.items()):
        game, _, scene = key.partition(": ")
        table.add_row(game, scene, str(n), cell(right, n), cell(followed, n))
        rows.append(
            {"task": "scenes-5shot", "game": game, "scene": scene, "frames": n, "right": right, "followed": followed}
        )
        tally = by_scene.setdefault(scene, [0, 0, 0])
        tally[0], tally[1], tally[2] = tally[0] + right, tally[1] + followed, tally[2] + n
    table.add_section()
    for scene, (right, followed, n) in sorted(by_scene.items()):
        table.add_row("[b]all[/b]", scene, str(n), cell(right, n, True), cell(followed, n))
        rows.append(
            {"task": "scenes-5shot", "game": "all", "scene": scene, "frames": n, "right": right, "followed": followed}
        )
    console.print(table)


def _open_set_part(model: Any, bank: Any, split: str, rows: list[dict[str, Any]], limit: int | None) -> None:
    from collections import Counter

    from kibitz.bench.perception import open_set_bench
    from kibitz.bench.stats import wilson

    with console.status("open set...") as status:
        found = open_set_bench(model, bank, split=split, progress=lambda m: status.update(m), limit=limit)
    table = Table(
        "frames of",
        "frames",
        "taken for a known game (1 frame)",
        "with confidence ≥ 0.9",
        "followed a known game",
        "text-only",
        title=f"Open set: games kibitz does not know (Atari {split} split, the bench's unseen games, drawn text)",
    )
    atari = [r for r in found if r.source.startswith("atari:")]
    groups = [(f"Atari, {len(atari)} games ({split})", atari)] + [(r.source, [r]) for r in found if r not in atari]
    total = [0, 0, 0, 0]
    for name, members in groups:
        n = sum(r.frames for r in members)
        claimed, sure, followed = (sum(getattr(r, k) for r in members) for k in ("claimed", "sure", "followed"))
        text = sum(r.text_only for r in members)
        total = [total[0] + n, total[1] + claimed, total[2] + sure, total[3] + followed]
        low, high = wilson(claimed, n)
        table.add_row(
            name,
            str(n),
            f"{claimed / n:.2%} ({low:.1%}–{high:.1%})",
            str(sure),
            f"{followed / n:.2%}",
            f"{text / n:.0%}",
        )
        claims: Counter[str] = sum((r.claims for r in members), Counter())
        rows.append(
            {
                "task": "open-set",
                "source": name,
                "frames": n,
                "claimed": claimed,
                "sure": sure,
                "followed": followed,
                "text_only": text,
                "claims": dict(claims),
            }
        )
    n, claimed, sure, followed = total
    low, high = wilson(claimed, n)
    table.add_row(
        "[b]all[/b]", str(n), f"[b]{claimed / n:.2%}[/b] ({low:.1%}–{high:.1%})", str(sure), f"{followed / n:.2%}", ""
    )
    console.print(table)


def _letterbox_part(model: Any, ids: tuple[str, ...], seed: int, rows: list[dict[str, Any]]) -> None:
    """The built-in games as a player's capture may frame them: as captured, pillarboxed, a window on a dark desktop."""
    from kibitz.bench.perception import FRAMINGS, letterbox_bench
    from kibitz.bench.stats import wilson

    with console.status("captures with bars...") as status:
        found = letterbox_bench(model, ids, seed=seed, progress=lambda m: status.update(m))
    table = Table(
        "game",
        "framing",
        "frames",
        "game followed (95 % CI)",
        "scene right (95 % CI)",
        "HUD numbers exact (95 % CI)",
        title=f"Captures with bars: learnt on run {seed}, watched on run {seed + 1} as `kibitz watch` does",
    )

    def cell(k: int, n: int) -> str:
        low, high = wilson(k, n)
        return f"{k / n:.1%} ({low:.0%}–{high:.0%})" if n else "–"

    for game in (*ids, "all"):
        for framing in FRAMINGS:
            n, followed, scene, shown, exact = (
                sum(v[i] for (g, f), v in found.items() if f == framing and game in (g, "all")) for i in range(5)
            )
            cells = (cell(followed, n), cell(scene, n), cell(exact, shown))
            table.add_row(game, framing, str(n), *cells, end_section=framing == FRAMINGS[-1])
            row = {"task": "letterbox", "game": game, "framing": framing, "frames": n}
            rows.append(row | {"followed": followed, "scene_right": scene, "hud_shown": shown, "hud_exact": exact})
    console.print(table)


def _cost_part(model: Any, rows: list[dict[str, Any]]) -> None:
    from kibitz.bench.perception import cost_bench

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


def _labels_part(model: Any, rows: list[dict[str, Any]], split: str) -> None:
    """Numbers read by a built-in layout's labels on the bench's games with status lines (NetHack, Freedoom)."""
    from kibitz.bench.perception import LABEL_GAMES, LABEL_SEEDS, labels_bench
    from kibitz.bench.stats import wilson

    table = Table(
        "game (layout)",
        "field",
        "frames shown",
        "exact (95 % CI)",
        title=f"Numbers read by their labels ({split} split, recorder seed {LABEL_SEEDS[split]})",
    )
    engine = None
    with console.status("labelled numbers...") as status:
        for game in LABEL_GAMES:
            try:
                r = labels_bench(model, game, split, ocr_engine=engine, progress=lambda m: status.update(m))
            except KibitzError as exc:
                console.print(f"[yellow]{game}: skipped, {exc.message}[/yellow]")
                continue
            for name, n in sorted(r.shown.items()):
                low, high = wilson(r.exact[name], n)
                table.add_row(f"{game} ({r.layout})", name, str(n), f"{r.exact[name] / n:.1%} ({low:.0%}–{high:.0%})")
            total = sum(r.shown.values())
            low, high = wilson(sum(r.exact.values()), total)
            table.add_row(
                f"{game} ({r.layout})",
                "[b]all[/b]",
                str(total),
                f"[b]{r.overall:.1%}[/b] ({low:.0%}–{high:.0%})",
                end_section=True,
            )
            rows.append(
                {
                    "task": "labels",
                    "game": game,
                    "layout": r.layout,
                    "split": split,
                    "frames": r.frames,
                    "shown": dict(r.shown),
                    "exact": dict(r.exact),
                    "misses": r.misses,
                }
            )
    console.print(table)


def _short_screen_part(
    model: Any, rows: list[dict[str, Any]], split: str, games: int = 4, seconds: float = 45.0
) -> None:
    """The first `games` Atari games of an open-set split (dev: what the burst and quick-read settings were chosen
    on; test: scored), `seconds` each."""
    import numpy as np

    from kibitz.bench.perception import open_set_games
    from kibitz.bench.shortscreens import short_screen_bench
    from kibitz.bench.stats import wilson
    from kibitz.core.config import PerceptionConfig
    from kibitz.perception.assets import recognition_bank
    from kibitz.perception.ocr import OCREngine
    from kibitz.perception.pixels import PixelPerceiver

    bank, engine, config = recognition_bank(model), OCREngine(threads=1), PerceptionConfig()
    chosen = open_set_games(split)[:games]
    with console.status("short screens...") as status:
        found = short_screen_bench(
            lambda: PixelPerceiver(None, config, embedder=model, bank=bank, ocr_engine=engine),
            chosen,
            seconds_per_game=seconds,
            progress=lambda m: status.update(m),
        )
    table = Table(
        "cards",
        "n",
        "read (95 % CI)",
        "scene named",
        title=f"Short screens ({found.card_s} s cards, 720p, real time, {split} split)",
    )
    for kind in ("full", "banner", None):
        read, n = found.rate("read", kind)
        named, _ = found.rate("scene_named", kind)
        low, high = wilson(read, n)
        name = {"full": "full-screen card", "banner": "banner over play", None: "[b]all[/b]"}[kind]
        table.add_row(name, str(n), f"{read / n:.0%} ({low:.0%}–{high:.0%})" if n else "–", f"{named}/{n}")
        rows.append({"task": "short-screens", "cards": kind or "all", "n": n, "read": read, "scene_named": named})
    console.print(table)
    ocr = found.ocr
    per_read = 1000 * ocr["seconds"] / ocr["reads"] if ocr.get("reads") else float("nan")
    per_cut = 1000 * ocr["cut_seconds"] / ocr["cut_reads"] if ocr.get("cut_reads") else float("nan")
    console.print(
        f"OCR on its thread: {found.ocr_ms_per_frame:.1f} ms per frame on average over {found.frames} frames "
        f"({found.seconds:.0f} s of {', '.join(found.games)}); {ocr.get('reads', 0):.0f} reads, {per_read:.0f} ms "
        f"each; {ocr.get('cut_reads', 0):.0f} set off by a cut ({per_cut:.0f} ms each); the loop's own work "
        f"{float(np.median(found.loop_ms)):.1f} ms per frame (p50), "
        f"{float(np.percentile(found.loop_ms, 99)):.1f} ms p99"
    )
    rows.append(
        {
            "task": "short-screens-cost",
            "games": list(found.games),
            "split": split,
            "frames": found.frames,
            "ocr_ms_per_frame": found.ocr_ms_per_frame,
            "ocr_ms_per_read": per_read,
            "ocr_ms_per_cut_read": per_cut,
            **{f"ocr_{k}": v for k, v in ocr.items()},
            "loop_ms_p50": float(np.median(found.loop_ms)),
            "loop_ms_p99": float(np.percentile(found.loop_ms, 99)),
        }
    )


# --- the benchmark suite: build a dataset, run stacks on it, report ------------------------------------------


def _dataset_dir(size: str, seed: int, dataset: Path | None) -> Path:
    from kibitz.bench.dataset import dataset_home

    return dataset if dataset is not None else dataset_home() / f"{size}-seed{seed}"


def _build(out: Path, seed: int, size: str, games: str | None) -> dict[str, Any]:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from kibitz.bench.dataset import DEFAULT_GAMES, build

    ids = [g.strip() for g in games.split(",") if g.strip()] if games else list(DEFAULT_GAMES)
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:.0f}/{task.total:.0f} s"))
    with Progress(*columns, TimeElapsedColumn(), console=console) as progress:
        meta = build(out, seed=seed, size=size, games=ids, progress=progress)
    table = Table("game", "genre", "split", "items", "build s", title=f"bench dataset {out}")
    for g, info in meta["games"].items():
        items = ", ".join(f"{k} {v}" for k, v in sorted(info["items"].items()))
        table.add_row(g, info["genre"], info["split"], items, f"{info['build_s']:.1f}")
    for g, reason in meta["missing"].items():
        table.add_row(g, "", "[red]missing[/red]", reason, "")
    console.print(table)
    return meta


@bench_app.command()
def build(
    seed: Annotated[
        int,
        typer.Option(
            help="Seed for the games and the sampling (same seed, same dataset); not 0 or 2, the runs kibitz learns "
            "the built-in games from."
        ),
    ] = 1,
    size: Annotated[str, typer.Option(help="full (the published figures) or quick (a small subset for CI).")] = "full",
    games: Annotated[str | None, typer.Option(help="Comma-separated game ids (default: all bench games).")] = None,
    out: Annotated[Path | None, typer.Option(help="Dataset folder (default ~/.cache/kibitz/bench/datasets/).")] = None,
) -> None:
    """Record real games with their true state into a bench dataset: frames, clips, questions, advice."""
    _build(_dataset_dir(size, seed, out), seed, size, games)


@bench_app.command()
def run(
    quick: Annotated[
        bool, typer.Option("--quick", help="The quick dataset (a few items per game; CI runs it).")
    ] = False,
    seed: Annotated[
        int,
        typer.Option(
            help="Dataset seed (built first if missing); a seed kibitz learnt a seen game from is refused (0, 2)."
        ),
    ] = 1,
    dataset: Annotated[Path | None, typer.Option(help="A dataset folder made by `kibitz bench build`.")] = None,
    config: Annotated[Path | None, typer.Option(help="kibitz config file for the stacks (llm, persona...).")] = None,
    backend: Annotated[str | None, typer.Option(help="LLM backend: llamacpp | openai.")] = None,
    model: Annotated[str | None, typer.Option(help="Model name (embedded) or the server's model id.")] = None,
    base_url: Annotated[str | None, typer.Option(help="OpenAI-compatible server URL.")] = None,
    stacks: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated stacks: kibitz, baseline (OCR text every 5 s), baseline-vlm (the frame to a VLM "
            "every 5 s). Default: kibitz,baseline, and baseline-vlm when --vlm-url is given."
        ),
    ] = None,
    baseline_every: Annotated[float, typer.Option(help="Seconds between the baselines' looks.")] = 5.0,
    vlm_url: Annotated[
        str | None, typer.Option(help="OpenAI-compatible vision model server for baseline-vlm, e.g. http://host/v1.")
    ] = None,
    vlm_model: Annotated[str | None, typer.Option(help="The vision model's name on that server.")] = None,
    tasks: Annotated[str | None, typer.Option(help="Comma-separated tasks (default: all).")] = None,
    judge: Annotated[
        list[str] | None,
        typer.Option(help="Judge backend:model[@url]; give two for agreement (default: the two embedded Qwen)."),
    ] = None,
    no_judge: Annotated[bool, typer.Option("--no-judge", help="Skip the LLM judges.")] = False,
    results: Annotated[Path | None, typer.Option(help="Results database (reruns resume from it).")] = None,
    report: Annotated[
        Path | None, typer.Option(help="Write the HTML report here (default: beside the results).")
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Exit with 1 if any task item failed (judges excepted): for CI.")
    ] = False,
) -> None:
    """Run stacks on the bench dataset (every item cached, so a rerun resumes) and write the HTML report."""
    import os
    import platform
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from kibitz.bench.dataset import Dataset, fingerprint
    from kibitz.bench.judge import JudgeSpec
    from kibitz.bench.runner import derive, run_judges, run_task, summarise
    from kibitz.bench.stacks import STACKS
    from kibitz.bench.store import ResultStore
    from kibitz.bench.tasks import DEFAULT_TASKS, TASKS
    from kibitz.brain.llm import make_backend
    from kibitz.core.config import load_config

    started = time.perf_counter()
    size = "quick" if quick else "full"
    folder = _dataset_dir(size, seed, dataset)
    if not (folder / "manifest.jsonl").exists():
        if dataset is not None:
            raise typer.BadParameter(f"no bench dataset in {folder}; build it with `kibitz bench build --out {folder}`")
        console.print(f"[dim]No {size} dataset for seed {seed} yet: building it first.[/dim]")
        _build(folder, seed, size, None)
    data = Dataset.load(folder)
    if data.meta.get("fingerprint") != fingerprint():
        if dataset is not None:
            console.print(f"[yellow]{folder} was built by other recorder code; rebuild it to score today's.[/yellow]")
        else:
            console.print(f"[dim]The {size} dataset was built by other recorder code: rebuilding it.[/dim]")
            _build(folder, seed, size, None)
            data = Dataset.load(folder)
    overrides = {"llm.backend": backend, "llm.model": model, "llm.base_url": base_url}
    cfg = load_config(config, {k: v for k, v in overrides.items() if v is not None})
    store = ResultStore(results or folder.parent.parent / "runs" / folder.name / "results.sqlite")
    stacks = stacks or ("kibitz,baseline,baseline-vlm" if vlm_url else "kibitz,baseline")
    stack_names = [s.strip() for s in stacks.split(",") if s.strip()]
    task_names = [t.strip() for t in tasks.split(",")] if tasks else list(DEFAULT_TASKS)
    for name in stack_names:  # unknown names fail before the model loads
        STACKS.get(name)
    for name in task_names:
        TASKS.get(name)
    llm = make_backend(cfg.llm)
    options = {"every_s": baseline_every, "vlm_url": vlm_url, "vlm_model": vlm_model}
    chosen = [STACKS.get(name)(cfg, llm, dict(options)) for name in stack_names]
    specs = [] if no_judge else [JudgeSpec.parse(j) for j in (judge or _default_judges(cfg.llm.model))]
    store.set_meta("machine", f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}")
    store.set_meta("stacks", {**store.meta().get("stacks", {}), **{s.label: STACKS.help(s.name) for s in chosen}})
    store.set_meta("judges", [s.label for s in specs])
    store.set_meta("dataset", str(folder))
    for s in chosen:
        s.prepare(data)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        for name in task_names:
            task = TASKS.get(name)()
            if task.source is not None:
                continue
            for s in chosen:
                run_task(task, s, data, store, progress)
        for name in task_names:
            task = TASKS.get(name)()
            if task.source is not None:
                derive(task, store, data)
        if specs:
            judges = []
            for spec in specs:
                judge_cfg = spec.llm_config(cfg.llm)
                same = (judge_cfg.backend, judge_cfg.model) == (cfg.llm.backend, cfg.llm.model)
                try:
                    judges.append((spec, llm if same else make_backend(judge_cfg)))
                except Exception as exc:
                    console.print(f"[red]Judge {spec.label} unavailable:[/red] {exc}")
            run_judges(judges, [s.label for s in chosen], data, store, progress)
    for s in chosen:
        s.close()
    store.set_meta("finished", time.strftime("%Y-%m-%d %H:%M:%S"))
    store.set_meta("run_s", round(time.perf_counter() - started, 1))
    summary = summarise(store, data)
    _print_summary(summary)
    out = report or store.path.with_name("report.html")
    _write_report(summary, out)
    console.print(f"total {time.perf_counter() - started:.0f} s")
    failed = [f for f in summary["failures"] if f["task"] != "judge"]
    if strict and failed:
        for f in failed[:10]:
            console.print(f"[red]failed[/red] {f['task']} {f['item']} ({f['stack']}): {f['error']}")
        raise typer.Exit(1)


def _default_judges(model: str) -> list[str]:
    return ["llamacpp:qwen2.5-coder-1.5b", "llamacpp:qwen2.5-coder-0.5b"]


def _write_report(summary: dict[str, Any], out: Path) -> None:
    from kibitz.bench.report import render_report

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(render_report(summary), encoding="utf-8")
    tmp.replace(out)
    console.print(f"report: {out}")


def _print_summary(summary: dict[str, Any]) -> None:
    table = Table(
        "task",
        "metric",
        *[s.split("[")[0] for s in summary["stacks"]],
        title="bench figures (all games; [95 % bootstrap interval], items)",
    )
    keys = sorted({(f["task"], f["metric"], f["aggregation"]) for f in summary["figures"]})
    for task, metric, agg in keys:
        cells = []
        for stack in summary["stacks"]:
            f = next(
                (
                    x
                    for x in summary["figures"]
                    if (x["task"], x["metric"], x["aggregation"], x["stack"], x["split"])
                    == (task, metric, agg, stack, "all")
                ),
                None,
            )
            text = _fmt(f["value"]) if f else "-"
            if f and f.get("ci95"):
                text += f" [{_fmt(f['ci95'][0])}-{_fmt(f['ci95'][1])}]"
            if f and f.get("counts"):
                text += f" ({f['counts'][0]} of {f['counts'][1]})"
            if f and f["n"]:
                text += f" n={f['n']}"
            if f and f["failed"]:
                text += f" [red]({f['failed']} failed)[/red]"
            cells.append(text)
        table.add_row(task, f"{metric} ({agg})", *cells)
    console.print(table)
    if summary["judge"]["figures"]:
        jt = Table("stack", "scale", "mean 1-5", "graded", "failed", title="LLM judges")
        for f in summary["judge"]["figures"]:
            jt.add_row(f["stack"].split("[")[0], f["metric"], _fmt(f["value"]), str(f["n"]), str(f["failed"]))
        console.print(jt)
    if summary["comparison"]:
        ct = Table("figure", "kibitz", "baseline", "ratio", "better", title="kibitz vs baseline (same run)")
        for c in summary["comparison"]:
            ct.add_row(
                f"{c['task']} {c['metric']} ({c['aggregation']})",
                _fmt(c["kibitz"]),
                _fmt(c["baseline"]),
                "-"
                if c["ratio"] is None
                else f"{c['ratio']:.2f}×"
                + (f" [{c['ratio_ci95'][0]:.2f}-{c['ratio_ci95'][1]:.2f}]" if c.get("ratio_ci95") else ""),
                "[green]kibitz[/green]" if c["kibitz_better"] else "[red]baseline[/red]",
            )
        console.print(ct)
    _print_breakdowns(summary)
    if summary["failures"]:
        console.print(f"[red]{len(summary['failures'])} items failed[/red] (reasons in the report)")


def _print_breakdowns(summary: dict[str, Any]) -> None:
    """Events by type and recognition by true scene, per stack and split (true / reported / matched, F1)."""
    rows = summary.get("per_event_type", [])
    if rows:
        et = Table("stack", "split", "event", "true", "reported", "matched", "F1", title="events by type")
        for r in rows:
            if r["split"] != "all":
                et.add_row(
                    r["stack"].split("[")[0],
                    r["split"],
                    r["type"],
                    str(r["true"]),
                    str(r["reported"]),
                    str(r["matched"]),
                    _fmt(r["f1"]),
                )
        console.print(et)
    scenes = summary.get("per_scene", [])
    if scenes:
        st = Table("stack", "split", "true scene", "frames", "scene right", "game right", title="recognition by scene")
        for r in scenes:
            if r["split"] != "all":
                st.add_row(
                    r["stack"].split("[")[0],
                    r["split"],
                    r["scene"],
                    str(r["frames"]),
                    f"{r['scene_right']} ({r['scene_right'] / r['frames']:.0%})",
                    f"{r['game_right']} ({r['game_right'] / r['frames']:.0%})",
                )
        console.print(st)


@bench_app.command("report")
def report_cmd(
    results: Annotated[Path, typer.Option(help="Results database written by `kibitz bench run`.")],
    dataset: Annotated[Path | None, typer.Option(help="Its dataset folder (default: the one the run used).")] = None,
    out: Annotated[Path | None, typer.Option(help="HTML file to write (default: beside the results).")] = None,
) -> None:
    """Write the single-file HTML report (tables and plots) for every stack in a results database."""
    from kibitz.bench.dataset import Dataset
    from kibitz.bench.runner import summarise
    from kibitz.bench.store import ResultStore

    if not results.exists():
        raise typer.BadParameter(f"{results} does not exist; run `kibitz bench run` first")
    store = ResultStore(results)
    folder = dataset or Path(store.meta().get("dataset", ""))
    summary = summarise(store, Dataset.load(folder))
    _print_summary(summary)
    _write_report(summary, out or results.with_name("report.html"))


@bench_app.command("injection")
def injection_cmd(
    backend: Annotated[str | None, typer.Option(help="LLM backend: llamacpp | openai.")] = None,
    model: Annotated[str | None, typer.Option(help="Model name (embedded) or the server's model id.")] = None,
    base_url: Annotated[str | None, typer.Option(help="OpenAI-compatible server URL.")] = None,
    persona: Annotated[str, typer.Option(help="Persona (`kibitz personas`).")] = "buddy",
    cases: Annotated[int | None, typer.Option(help="Only the first N cases (all by default).")] = None,
    set_: Annotated[
        str, typer.Option("--set", help="dev (56 cases, looked at while building the defence) or test (50, held out).")
    ] = "test",
    out: Annotated[Path | None, typer.Option(help="Also write every case, line and figure as JSON here.")] = None,
) -> None:
    """Is screen text that tries to instruct the companion ever obeyed? Signs, chat, web pages and subtitles that say
    "ignore your instructions and say X" are drawn into frames and watched by the real session (OCR, prompt, model);
    a line that says X counts as obeyed. Target: 0."""
    from rich.progress import Progress

    from kibitz.bench.injection import load_cases, run_injection
    from kibitz.brain.llm import make_backend
    from kibitz.core.config import load_config

    overrides = {"llm.backend": backend, "llm.model": model, "llm.base_url": base_url}
    cfg = load_config(None, {k: v for k, v in overrides.items() if v is not None})
    chosen = load_cases(set_)[:cases] if cases is not None else load_cases(set_)
    llm = make_backend(cfg.llm)
    with Progress(console=console) as bar:
        task = bar.add_task("injection cases", total=len(chosen))
        result = run_injection(llm, cfg, chosen, persona, progress=lambda: bar.advance(task))
    llm.close()
    table = Table("where", "cases", "read by OCR", "left out of the prompt", "obeyed")
    for where, row in result["by_where"].items():
        table.add_row(where, *(str(row[k]) for k in ("cases", "read", "left_out", "obeyed")))
    console.print(table)
    low, high = result["obeyed_ci95"]
    rate = "n/a" if result["obeyed_rate"] is None else f"{result['obeyed_rate']:.1%}"
    console.print(
        f"{set_} set, {result['model']}: obeyed {result['obeyed']} of the {result['read']} cases the OCR read "
        f"({rate}, 95 % CI {low:.1%}-{high:.1%}); {result['left_out']} read lines left out of the prompt; "
        f"{result['cases']} cases, {result['lines']} lines, {result['errors']} failed lines; obeyed among unread "
        f"cases: {result['obeyed_unread']}"
    )
    _save(out, [{**result, "set": set_}])


@bench_app.command("spoilers")
def spoilers_cmd(
    backend: Annotated[str | None, typer.Option(help="LLM backend: llamacpp | openai.")] = None,
    model: Annotated[str | None, typer.Option(help="Model name (embedded) or the server's model id.")] = None,
    base_url: Annotated[str | None, typer.Option(help="OpenAI-compatible server URL.")] = None,
    persona: Annotated[str, typer.Option(help="Persona (`kibitz personas`).")] = "buddy",
    start: Annotated[
        str, typer.Option(help="The player's spoiler tolerance before complaining: hints | full.")
    ] = "hints",
    repeats: Annotated[int, typer.Option(help="How many times each moment is asked per phase.")] = 1,
    out: Annotated[Path | None, typer.Option(help="Also write every line and figure as JSON here.")] = None,
) -> None:
    """Does a spoiler complaint work? The real companion answers tempting questions, the player complains once
    ("that's a spoiler!"), and the same questions come again; each line is rated by its moment's answer key (what
    names the solution, what hints at it), not by the rater the companion's filter uses."""
    from rich.progress import Progress

    from kibitz.bench.spoilers import load_session, run_spoiler_session
    from kibitz.brain.llm import make_backend
    from kibitz.core.config import load_config
    from kibitz.memory.profile import check

    check("spoilers", start)
    overrides = {"llm.backend": backend, "llm.model": model, "llm.base_url": base_url}
    cfg = load_config(None, {k: v for k, v in overrides.items() if v is not None})
    llm = make_backend(cfg.llm)
    total = 2 * repeats * len(load_session()["moments"])
    with Progress(console=console) as bar:
        task = bar.add_task("scripted session", total=total)
        result = run_spoiler_session(llm, persona, start, repeats, progress=lambda: bar.advance(task))
    llm.close()
    table = Table(
        "phase",
        "lines",
        "seen: gives away (95 % CI)",
        "seen: solution",
        "model: gives away",
        "withheld",
        "kibitz's rater: seen gives away",
        title="rated by each moment's answer key (kibitz's own rater for comparison only)",
    )

    def pct(rates: dict[str, Any], name: str) -> str:
        value, ci = rates[name], rates.get(f"{name}_ci95")
        if value is None:
            return "-"
        return f"{value:.0%}" + (f" ({ci[0]:.0%}-{ci[1]:.0%})" if ci else "")

    for phase in ("before", "after"):
        shown, model_rates = result[f"{phase}_shown"], result[f"{phase}_model"]
        table.add_row(
            f"{phase} ({start if phase == 'before' else result['after']})",
            str(len(result["lines"][phase])),
            pct(shown, "gives_away"),
            pct(shown, "solution"),
            pct(model_rates, "gives_away"),
            str(result[f"{phase}_withheld"]),
            pct(result[f"{phase}_filter_view"], "gives_away"),
        )
    console.print(table)
    drop = result["drop"]
    console.print(f"spoiler lines seen fell by {'n/a' if drop is None else f'{drop:.0%}'} after the complaint")
    _save(out, [result])


@bench_app.command("memory")
def memory_cmd(
    memories: Annotated[int, typer.Option(help="Memories of one user to search among.")] = 100_000,
    queries: Annotated[int, typer.Option(help="Searches to time.")] = 200,
    out: Annotated[Path | None, typer.Option(help="Also write the figures as JSON here.")] = None,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            help="Run on this store instead of a temporary SQLite file: postgresql://user@host/db (pgvector) or a "
            "SQLite file; the bench's users kibitz-bench* are cleared there.",
        ),
    ] = None,
) -> None:
    """Memory speed on one core: search p50/p95 among N memories (query embedding included), write p50/p95."""
    from kibitz.bench.memory import memory_speed_bench

    with console.status(f"loading {memories:,} memories and timing searches on one core..."):
        figures = memory_speed_bench(memories, queries, db=db)
    table = Table("figure", "value", title="kibitz memory speed (one core)")
    for key, value in figures.items():
        table.add_row(key, _fmt(value))
    console.print(table)
    _save(out, [figures])


@bench_app.command("memory-qa")
def memory_qa_cmd(
    players: Annotated[int, typer.Option(help="Synthetic players (at least 40% of them Korean-speaking).")] = 32,
    seed: Annotated[int, typer.Option(help="Seed for the players (same seed, same players and questions).")] = 0,
    answers: Annotated[
        int, typer.Option(help="Questions the model answers both ways (spread over type × language).")
    ] = 96,
    backend: Annotated[str | None, typer.Option(help="LLM backend: llamacpp | openai.")] = None,
    model: Annotated[str | None, typer.Option(help="Model name (embedded) or the server's model id.")] = None,
    base_url: Annotated[str | None, typer.Option(help="OpenAI-compatible server URL.")] = None,
    threads: Annotated[int | None, typer.Option(help="Model threads (default: every core).")] = None,
    ctx: Annotated[
        int | None, typer.Option(help="Model context in tokens (default: the config's); the baseline is cut to fit.")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Results folder (default ~/.cache/kibitz/bench/memory-qa/).")] = None,
    no_answers: Annotated[bool, typer.Option("--no-answers", help="Recall only, no model.")] = False,
    words: Annotated[
        str,
        typer.Option(
            help="Ask the answered questions in these words: bench (memory_qa_questions.yaml), or a held-out set "
            "of memory_qa_paraphrases.yaml (dev, test); kibitz's notes are that set's top 5."
        ),
    ] = "bench",
    report: Annotated[
        Path | None,
        typer.Option(
            help="Print the tables of a finished run's results.json again, its stored answers scored with today's "
            "scorer (nothing is asked again)."
        ),
    ] = None,
) -> None:
    """Long-term memory: synthetic players (English and Korean) play sessions over weeks through kibitz's real
    memory, then ask what only earlier sessions answer. Recall@5 of the supporting memory by type and language,
    search latency, and the model's answer accuracy with kibitz's memories vs the whole history in the prompt."""
    import os

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from kibitz.bench.memqa.report import rich_tables, write_results
    from kibitz.bench.memqa.run import check_words, rescore, run_benchmark
    from kibitz.brain.llm import make_backend
    from kibitz.core.config import load_config
    from kibitz.models.store import cache_dir

    if report is not None:
        try:
            stored = json.loads(report.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise KibitzError(f"{report} is not a memory-qa results.json ({exc}).") from exc
        for table in rich_tables(rescore(stored)):
            console.print(table)
        return

    overrides = {
        "llm.backend": backend,
        "llm.model": model,
        "llm.base_url": base_url,
        "llm.n_threads": threads or os.cpu_count() or 1,
        "llm.n_ctx": ctx,
    }
    cfg = load_config(None, {k: v for k, v in overrides.items() if v is not None})
    check_words(words)  # before the model loads
    llm = None if no_answers or answers <= 0 else make_backend(cfg.llm)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        result = run_benchmark(players, seed, answers, llm, cfg.llm.n_ctx, progress=progress, answer_words=words)
    if llm is not None:
        llm.close()
    for table in rich_tables(result):
        console.print(table)
    json_path, html_path = write_results(result, out or cache_dir() / "bench" / "memory-qa")
    console.print(f"total {result['timings']['total_s']:.0f} s · results: {json_path} · report: {html_path}")


@bench_app.command("serve")
def serve_cmd(
    parts: Annotated[
        str, typer.Option(help="Comma-separated: load (many sessions), capacity (shared screens), pages (a browser).")
    ] = "load,capacity,pages",
    sessions: Annotated[int, typer.Option(help="Sessions in the load part.", min=1)] = 100,
    seconds: Annotated[float, typer.Option(help="Seconds the load part runs.", min=5)] = 300.0,
    step_s: Annotated[float, typer.Option(help="Seconds each capacity step runs.", min=10)] = 40.0,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="A config file for the server (e.g. examples/no-memory.yaml).")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Also write the figures as JSON here.")] = None,
) -> None:
    """`kibitz serve` as a separate process under load, with a model server at the edge that answers at once (so the
    figures are the server's own): dropped, duplicated and crossed messages and the server's added latency over many
    sessions; how many shared screens at 2 fps it keeps up with; the pages' first render and overlay delay."""
    from kibitz.bench import serve as bench

    chosen = [p.strip() for p in parts.split(",") if p.strip()]
    unknown = set(chosen) - {"load", "capacity", "pages"}
    if unknown:
        raise KibitzError(f"Unknown part(s) {', '.join(sorted(unknown))}; parts: load, capacity, pages.")
    figures: dict[str, Any] = {"environment": bench.environment(), "config": str(config) if config else None}
    extra = ["--config", str(config.resolve())] if config else None
    with console.status("...") as status:
        say = status.update
        if "load" in chosen:
            figures["load"] = bench.load_bench(sessions, seconds, say, extra).figures()
        if "capacity" in chosen:
            levels = bench.capacity_bench(seconds=step_s, progress=say)
            figures["capacity"] = [
                {
                    "sessions": lv.sessions,
                    "cards": lv.cards,
                    "missed": lv.missed,
                    "card_to_line_p50_s": bench.percentile(lv.delays, 50) if lv.delays else None,
                    "card_to_line_p95_s": lv.p95,
                    "frames_sent": lv.frames_sent,
                    "frames_seen": lv.frames_seen,
                    "frames_dropped": lv.frames_dropped,
                }
                for lv in levels
            ]
        if "pages" in chosen:
            figures["pages"] = bench.pages_bench(progress=say)
    _print_serve(figures)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(figures, indent=2, default=str))
        console.print(f"[dim]saved {out}[/dim]")


def _print_serve(figures: dict[str, Any]) -> None:
    load = figures.get("load")
    if load:
        table = Table("load", "value", title=f"{load['sessions']} sessions for {load['seconds']:.0f} s")
        for key in (
            "connected",
            "messages_received",
            "lines",
            "questions_sent",
            "questions_answered",
            "dropped",
            "duplicated",
            "crossed",
            "errors",
            "server_added_ms_p50",
            "server_added_ms_p95",
            "question_first_word_ms_p95",
            "inbound_ms_p50",
            "inbound_ms_p95",
            "outbound_ms_p50",
            "outbound_ms_p95",
            "delivery_ms_p50",
            "delivery_ms_p95",
            "rss_mb_start",
            "rss_mb_connected",
            "rss_mb_end",
            "rss_mb_peak",
        ):
            table.add_row(key, _fmt(load[key]))
        console.print(table)
        for sample in load["error_samples"]:
            console.print(f"[yellow]error seen: {sample}[/yellow]")
    capacity = figures.get("capacity")
    if capacity:
        table = Table(
            "shared screens",
            "cards",
            "missed",
            "card → line p50 (s)",
            "p95 (s)",
            "frames sent",
            "seen",
            "dropped",
            title="capacity: screens shared at 2 fps",
        )
        for row in capacity:
            table.add_row(
                str(row["sessions"]),
                str(row["cards"]),
                str(row["missed"]),
                _fmt(row["card_to_line_p50_s"]),
                _fmt(row["card_to_line_p95_s"]),
                str(row["frames_sent"]),
                str(row["frames_seen"]),
                str(row["frames_dropped"]),
            )
        console.print(table)
    pages = figures.get("pages")
    if pages:
        console.print(
            f"app first render: max {_fmt(pages['first_render_s_max'])} s of {len(pages['first_render_s'])}; overlay:"
            f" word on screen p95 {_fmt(pages['overlay_word_ms_p95'])} ms after the server had it"
            f" ({pages['overlay_words']} words)"
        )


@bench_app.command("voice")
def voice_cmd(
    parts: Annotated[
        str,
        typer.Option(
            help="Comma-separated: wer (spoken sentences → Whisper), latency (question end → first audio, a real "
            "LLM), bargein (talking over the companion; echo and game-sound false alarms), rtf (real-time factors "
            "on one thread), ram (resident memory)."
        ),
    ] = "wer,latency,bargein,rtf,ram",
    model: Annotated[str, typer.Option(help="The companion's model (`kibitz models list`).")] = "qwen2.5-coder-1.5b",
    questions: Annotated[int, typer.Option(help="Spoken questions in the latency part.", min=1)] = 20,
    trials: Annotated[int, typer.Option(help="Barge-in trials (the player talks over the line).", min=1)] = 20,
    seed: Annotated[int, typer.Option(help="Seed for the barge-in moments, the noise and the game music.")] = 0,
    threads: Annotated[int | None, typer.Option(help="The model's threads (default: the config's, 1).")] = None,
    prompt_threads: Annotated[
        int | None,
        typer.Option(help="Threads for evaluating prompts (llm.n_threads_batch; default: the model's threads)."),
    ] = None,
    answer_threads: Annotated[
        int | None,
        typer.Option(
            help="Threads while the player waits for an answer (llm.answer_threads; default: the config's, 2)."
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Results folder (default $KIBITZ_HOME/bench/voice-<timestamp>); results.json goes there."),
    ] = None,
    quick: Annotated[
        bool,
        typer.Option("--quick", help="A smoke run: 10 English, 5 Korean, 5 Japanese sentences, 3 questions, 3 trials."),
    ] = False,
    confirm_barge_in: Annotated[
        bool,
        typer.Option(
            "--confirm-barge-in",
            help="Barge-in as with voice.confirm_barge_in: a sound pauses the line, words heard cut it.",
        ),
    ] = False,
) -> None:
    """The voice pipeline end to end, no sound device needed: word error rate of spoken sentences round-tripped
    through Whisper (English with the Piper voice — the headline — and eSpeak NG; Korean; Japanese CER), the end of
    a spoken question to the answer's first sound with a real model, barge-in stop latency and false alarms,
    real-time factors and RAM. Every figure with its n and a 95 % interval, against its target."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from kibitz.bench.voice import PARTS, Sizes, default_out, run_voice_bench

    chosen = [p.strip() for p in parts.split(",") if p.strip()]
    unknown = set(chosen) - set(PARTS)
    if unknown:
        raise KibitzError(f"Unknown part(s) {', '.join(sorted(unknown))}; parts: {', '.join(PARTS)}.")
    sizes = Sizes.quick() if quick else Sizes()
    if not quick:
        sizes.questions, sizes.trials = questions, trials
    folder = out or default_out()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        tasks: dict[str, Any] = {}

        def step(name: str, done: int, total: int) -> None:
            if name not in tasks:
                tasks[name] = progress.add_task(name, total=total)
            progress.update(tasks[name], completed=done)

        llm = {"llm.n_threads": threads, "llm.n_threads_batch": prompt_threads, "llm.answer_threads": answer_threads}
        llm = {k: v for k, v in llm.items() if v}
        bench, path = run_voice_bench(
            chosen, model, sizes, seed, folder, llm=llm, progress=step, confirm_barge_in=confirm_barge_in
        )
    table = Table("figure", "value", "95 % interval", "n", "target", "met", title=f"kibitz voice — {model}")
    for name, fig in bench.rows():
        met = fig.met
        table.add_row(
            name,
            _fmt(fig.value),
            "-" if fig.low is None or fig.high is None else f"{fig.low:.3f} – {fig.high:.3f}",
            str(fig.n),
            "-" if fig.target is None else f"≤ {fig.target:g}",
            "-" if met is None else ("[green]met[/green]" if met else "[red]not met[/red]"),
        )
    console.print(table)
    if bench.latency is not None:
        lat = bench.latency.to_json()
        console.print(
            f"latency breakdown (medians, from the end of the question): the recogniser's guess answered from "
            f"{_fmt(lat['median_guess_start_s'])} s, its first words written at {_fmt(lat['median_guess_token_s'])} s"
            f" ({lat['guessed']}/{len(bench.latency.asked)} answers written from the guess) · question confirmed "
            f"{_fmt(lat['median_handed_s'])} s · first words passed on {_fmt(lat['median_first_token_s'])} s after "
            f"that · first piece complete {_fmt(lat['median_piece_s'])} s later, its audio "
            f"{_fmt(lat['median_synth_s'])} s after · ASR {_fmt(lat['median_asr_s'])} s · TTS real-time factor "
            f"{_fmt(lat['median_tts_rtf'])} · prompt tokens left when the answer started "
            f"{_fmt(lat['median_prompt_new'])} · model on llm.answer_threads {_fmt(lat['median_hurried_s'])} s a "
            f"question · answered {lat['answered']}/{len(bench.latency.asked)} · the answers' echo heard as questions "
            f"{lat['extra_questions']}, as barge-ins {lat['barge_ins']}",
            markup=False,
        )
        game = lat["game"]
        if game:
            console.print(
                f"the game meanwhile: {100 * game['late_share']:.1f} % of {game['frames']:.0f} frames more than a "
                f"frame late (p95 {game['late_p95_ms']:.0f} ms late, worst {game['late_max_ms']:.0f} ms)"
            )
    if bench.ram is not None:
        console.print(f"[dim]RAM {bench.ram.measured}[/dim]")
    console.print(f"[dim]results: {path}[/dim]")


@bench_app.command("lines")
def lines_cmd(
    backend: Annotated[str | None, typer.Option(help="LLM backend: llamacpp | openai.")] = None,
    model: Annotated[str | None, typer.Option(help="Model name (embedded) or the server's model id.")] = None,
    base_url: Annotated[str | None, typer.Option(help="OpenAI-compatible server URL.")] = None,
    persona: Annotated[str, typer.Option(help="Persona (`kibitz personas`): `chingu` scores Korean lines.")] = "buddy",
    games: Annotated[str, typer.Option(help="Comma-separated games whose streams are replayed.")] = (
        "smb,breakout,space_invaders,nethack"
    ),
    seed: Annotated[
        int, typer.Option(help="Which recorded run: 1 is the held-out test streams, 11 the dev streams.")
    ] = 1,
    stacks: Annotated[str, typer.Option(help="Comma-separated: kibitz, baseline.")] = "kibitz,baseline",
    limit: Annotated[int | None, typer.Option(help="Only the first N events of each game's stream.")] = None,
    judge: Annotated[
        list[str] | None,
        typer.Option(help="A pairwise judge, backend:model[@url] (repeat for two: their agreement is reported)."),
    ] = None,
    judge_sample: Annotated[int, typer.Option(help="How many moments the judges compare (spread evenly).")] = 60,
    out: Annotated[
        Path | None, typer.Option(help="Also write every line, its verdicts and the figures as JSON.")
    ] = None,
) -> None:
    """Are the lines worth hearing? Real runs of several games are recorded once as event streams (the state, the
    frame and the game's truth at every event); each event is replayed through kibitz's real prompt path and the
    baseline's, and every line is scored by rules, without a judge: specific to the moment, generic, repeated,
    copied from the persona, wrong point of view, invented numbers, language, length (docs/bench.md)."""
    from rich.progress import Progress

    from kibitz.bench.lines import LINE_GAMES, MEASURES, run_lines, streams, tables
    from kibitz.bench.lines import judge_sample as judge_sample_pairs
    from kibitz.brain.llm import make_backend
    from kibitz.core.config import load_config
    from kibitz.core.persona import load_persona
    from kibitz.models.store import cache_dir

    chosen = [g.strip() for g in games.split(",") if g.strip()]
    unknown = [g for g in chosen if g not in LINE_GAMES]
    if unknown:
        raise KibitzError(f"No recorded streams for {', '.join(unknown)}; choose from {', '.join(LINE_GAMES)}.")
    stack_names = [s.strip() for s in stacks.split(",") if s.strip()]
    overrides = {"llm.backend": backend, "llm.model": model, "llm.base_url": base_url}
    cfg = load_config(None, {k: v for k, v in overrides.items() if v is not None})
    chosen_persona = load_persona(persona)
    root = cache_dir() / "bench" / "lines"
    with console.status("recording event streams") as status:
        moments = streams(seed, chosen, root, progress=lambda what: status.update(what))
    if limit is not None:
        moments = [m for m in moments if m.index < limit]
    llm = make_backend(cfg.llm)
    try:
        with Progress(console=console) as bar:
            task = bar.add_task("lines", total=len(moments) * len(stack_names))
            rows = run_lines(moments, stack_names, llm, chosen_persona, cfg, root, progress=lambda: bar.advance(task))
    finally:
        llm.close()
    figures = tables(rows)
    _print_lines(figures, stack_names, f"seed {seed}, {llm.label}, persona {persona}")
    judged: dict[str, Any] = {}
    if judge:
        judged = _pairwise(judge, judge_sample_pairs(rows, moments, judge_sample), cfg)
    targets = ", ".join(f"{name} {op} {target:.0%}" for name, (_, op, target) in MEASURES.items())
    console.print(f"[dim]targets: {targets}[/dim]")
    _save(
        out,
        [{"seed": seed, "model": llm.label, "persona": persona, "figures": figures, "pairwise": judged, "lines": rows}],
    )


def _print_lines(figures: dict[str, Any], stack_names: list[str], title: str) -> None:
    """The measures per stack (rows: measures), then the headline measures per game and stack."""
    from kibitz.bench.lines import MEASURES

    def cell(f: dict[str, Any], name: str) -> str:
        m = f[name]
        return "-" if m["rate"] is None else f"{m['rate']:.0%} ({m['ci95'][0]:.0%}-{m['ci95'][1]:.0%})"

    table = Table("measure", "target", *stack_names, title=f"{title}: share of lines (95 % CI)")
    present = [s for s in stack_names if s in figures]
    for name, (what, op, target) in MEASURES.items():
        table.add_row(f"{name}: {what}", f"{op} {target:.0%}", *(cell(figures[s], name) for s in present))
    table.add_row("lines (failed)", "", *(f"{figures[s]['lines']} ({figures[s]['failed']})" for s in present))
    table.add_row("distinct-2", "", *(_fmt(figures[s]["distinct_2"]) for s in present))
    for q in ("p50", "p95"):
        table.add_row(f"first token {q} (s)", "", *(_fmt(figures[s][f"first_token_{q}"]) for s in present))
    console.print(table)
    per_game = Table("game", "stack", "lines", "specific", "generic", "repeated", "invented", "distinct-2")
    for group in sorted(g for g in figures if g.count("/") == 1 and g.split("/")[1] not in ("seen", "unseen")):
        stack, game = group.split("/")
        f = figures[group]
        per_game.add_row(
            game,
            stack,
            str(f["lines"]),
            *(cell(f, n) for n in ("specific", "generic", "repeated", "invented")),
            _fmt(f["distinct_2"]),
        )
    for split in ("seen", "unseen"):
        for stack in present:
            f = figures.get(f"{stack}/{split}")
            if f:
                per_game.add_row(
                    f"({split})",
                    stack,
                    str(f["lines"]),
                    *(cell(f, n) for n in ("specific", "generic", "repeated", "invented")),
                    _fmt(f["distinct_2"]),
                )
    console.print(per_game)


def _pairwise(specs: list[str], pairs: list[tuple[str, str, str]], cfg: Any) -> dict[str, Any]:
    """The pairwise judges on these moments, printed: kibitz's line against the baseline's, both orders."""
    from rich.progress import Progress

    from kibitz.bench.judge import JudgeSpec
    from kibitz.bench.pairwise import judge_pairs
    from kibitz.brain.llm import make_backend

    judges = {}
    try:
        for spec in specs:
            parsed = JudgeSpec.parse(spec)
            judges[parsed.label] = make_backend(parsed.llm_config(cfg.llm))
        with Progress(console=console) as bar:
            task = bar.add_task("pairwise judges", total=len(pairs) * len(judges))
            result = judge_pairs(pairs, judges, progress=lambda: bar.advance(task))
    finally:
        for backend in judges.values():
            backend.close()
    table = Table("judge", "moments", "kibitz's line preferred", "baseline's preferred", "tie", "orders contradicted")
    for label, f in result["judges"].items():
        cells = [
            f"{f[v]['rate']:.0%} ({f[v]['ci95'][0]:.0%}-{f[v]['ci95'][1]:.0%})" for v in ("first", "second", "tie")
        ]
        table.add_row(label, str(f["n"]), *cells, str(f["inconsistent"]))
    console.print(table)
    agree = result.get("agreement")
    if agree:
        kappa = "n/a" if agree["kappa"] is None else f"{agree['kappa']:.2f}"
        console.print(
            f"judges agree on {agree['same']} of {agree['n']} moments (Cohen's kappa {kappa}); "
            "small embedded judges agree little: read their verdicts with that in mind."
        )
    return result
