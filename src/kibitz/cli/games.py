"""`kibitz games`: list the games, learn the built-in ones' HUD fonts and scenes, add new games from screenshots."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from kibitz.core.errors import KibitzError

games_app = typer.Typer(
    help="The games kibitz knows; teach it to recognise them from pixels.", invoke_without_command=True
)
EmbedderOpt = Annotated[
    str, typer.Option("--embedder", help="Image embedder: efficientnet-lite0 (default) or thumbnail (no torch).")
]


LabelOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--label",
        help="Read a number by its on-screen label, FIELD=LABEL (repeatable): --label hp=HP --label depth=Depth; "
        "LABEL@max, @above, @under say where the number is (docs/perception.md).",
    ),
]
LayoutOpt = Annotated[
    str | None,
    typer.Option(
        "--layout",
        help="Read a family of games' labelled numbers: roguelike (Dlvl, $, HP(max), Pw, AC, Xp, T) or shooter "
        "(numbers above AMMO, HEALTH, ARMOR).",
    ),
]


@games_app.callback()
def games(ctx: typer.Context) -> None:
    """List the games kibitz knows, whether each is installed here, and what pixel perception has learnt."""
    if ctx.invoked_subcommand is not None:
        return
    from rich.table import Table

    from kibitz.games import GAMES, get_game
    from kibitz.perception.assets import glyph_path, known_games

    learnt = set(known_games())
    table = Table()
    table.add_column("id", no_wrap=True)  # ids are what people type: never wrapped
    for name in ("game", "platform", "genre", "installed", "pixels learnt"):
        table.add_column(name)
    for gid in GAMES.names():
        adapter = get_game(gid)
        try:
            adapter.check_installed()
            ok = "yes"
        except KibitzError as exc:
            ok = f"no: {exc.message}"
        pixels = ", ".join(p for p, have in (("scenes", gid in learnt), ("HUD", glyph_path(gid).is_file())) if have)
        table.add_row(gid, adapter.title, adapter.platform, adapter.genre, ok, pixels or "-")
    for gid in sorted(learnt - set(GAMES.names())):
        table.add_row(gid, gid, "added", "-", "screenshots", "scenes")
    Console().print(table)


def _progress() -> Progress:
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), transient=True)


@games_app.command()
def learn(
    game_ids: Annotated[list[str] | None, typer.Argument(help="Built-in game ids (default: all installed).")] = None,
    embedder: EmbedderOpt = "efficientnet-lite0",
) -> None:
    """Learn built-in games' HUD fonts and scene prototypes by playing them on their emulators (~1 min each)."""
    from kibitz.games import GAMES, get_game
    from kibitz.perception.assets import learn_builtin, vision_home
    from kibitz.perception.classifier import EMBEDDERS

    ids = game_ids or []
    if not ids:
        for gid in GAMES.names():
            try:
                get_game(gid).check_installed()
                ids.append(gid)
            except KibitzError:
                continue
    model = EMBEDDERS.get(embedder)()
    with _progress() as bar:
        task = bar.add_task("starting", total=None)
        done = learn_builtin(model, ids, progress=lambda msg: bar.update(task, description=msg))
    for gid, line in done.items():
        Console().print(f"{gid}: {line}")
    Console().print(f"[dim]saved under {vision_home()}[/dim]")


@games_app.command()
def add(
    name: Annotated[str, typer.Argument(help="A short id for the game, e.g. celeste.")],
    folder: Annotated[Path, typer.Argument(help="Screenshots; sub-folders named gameplay, menu, pause, death...")],
    embedder: EmbedderOpt = "efficientnet-lite0",
) -> None:
    """Teach kibitz a new game from a folder of screenshots (a handful per scene is enough); no code. A labels.yaml
    in the folder (`layout: roguelike` and/or `labels: {hp: [HP], ammo: [AMMO@above]}`) has its numbers read by their
    on-screen labels whenever kibitz sees the game."""
    from kibitz.perception.assets import add_game, prototype_path
    from kibitz.perception.classifier import EMBEDDERS

    model = EMBEDDERS.get(embedder)()
    with _progress() as bar:
        task = bar.add_task("reading screenshots", total=None)
        used, problems = add_game(name, folder, model, progress=lambda msg: bar.update(task, description=msg))
    for problem in problems:
        Console(stderr=True).print(f"[yellow]skipped: {problem}[/yellow]")
    Console().print(f"{name}: {used} screenshots → {prototype_path(name)}")


@games_app.command()
def remove(
    name: Annotated[str, typer.Argument(help="A game id added with `kibitz games add`, or a built-in.")],
) -> None:
    """Forget what pixel perception learnt about a game (its prototypes and HUD font)."""
    from kibitz.perception.assets import (
        check_game_name,
        glyph_path,
        labels_path,
        prototype_path,
        record_origin,
        user_hud_dir,
    )

    check_game_name(name)
    paths = (prototype_path(name), glyph_path(name), user_hud_dir() / f"{name}.hud.yaml", labels_path(name))
    gone = [p for p in paths if p.is_file()]
    if not gone:
        raise KibitzError(f"Nothing is learnt about {name!r}; `kibitz games` lists what is.")
    for p in gone:
        p.unlink()
    record_origin(name, None)
    Console().print(f"removed {', '.join(str(p) for p in gone)}")


def parse_label_options(items: list[str] | None) -> dict[str, list[str]]:
    """--label FIELD=LABEL options as {field: [label, ...]}, or a KibitzError for one that is not that."""
    labels: dict[str, list[str]] = {}
    for item in items or []:
        field, sep, text = item.partition("=")
        if not sep or not field.strip() or not text.strip():
            raise KibitzError(f"--label takes FIELD=LABEL (e.g. hp=HP); {item!r} is not that.")
        labels.setdefault(field.strip(), []).append(text.strip())
    return labels


def _pictures(paths: list[Path]) -> list[Path]:
    from kibitz.perception.assets import IMAGE_SUFFIXES

    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out += sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            out.append(path)
    return out


@games_app.command()
def recognise(
    paths: Annotated[list[Path], typer.Argument(help="Pictures (.png, .jpg...) or folders of them.")],
    jsonl: Annotated[bool, typer.Option("--jsonl", help="One JSON object per picture instead of a table.")] = False,
    label: LabelOpt = None,
    layout: LayoutOpt = None,
    seconds: Annotated[float, typer.Option(help="How long each picture is shown to perception.")] = 1.5,
    embedder: EmbedderOpt = "efficientnet-lite0",
) -> None:
    """What kibitz makes of each picture, as live perception sees it when the picture stays on screen for a moment:
    the game (or none: a game kibitz does not know, a text-only or blank screen, with the reason), the scene, and
    the HUD numbers it reads. Run it on screenshots of your game to check that kibitz knows it."""
    import json

    from pydantic import ValidationError
    from rich.table import Table

    from kibitz.core.config import PerceptionConfig
    from kibitz.perception.assets import read_image, recognition_bank
    from kibitz.perception.classifier import EMBEDDERS
    from kibitz.perception.pixels import PixelPerceiver, perceive_still

    labels = parse_label_options(label)
    files = _pictures(paths)
    if not files:
        raise KibitzError("No pictures found: give image files or folders of them (.png, .jpg, .bmp, .webp).")
    model = EMBEDDERS.get(embedder)()
    bank = recognition_bank(model)
    if bank is None:
        raise KibitzError("kibitz knows no game yet: run `kibitz games learn` (built-in games) or `kibitz games add`.")
    try:
        config = PerceptionConfig(embedder=embedder, labels=labels, layout=layout, ocr_inline=True)
    except ValidationError as exc:
        raise KibitzError(f"--layout: {exc.errors()[0]['msg']}.") from None
    engine = None
    table = Table("picture", "game", "scene", "HUD", "why no game", title="What kibitz sees")
    out = Console()
    for path in files:
        row: dict[str, object] = {"file": str(path)}
        try:
            image = read_image(path)
        except (ValueError, OSError) as exc:
            row["error"] = str(exc)
            if jsonl:
                print(json.dumps(row, ensure_ascii=False), flush=True)
            else:
                table.add_row(path.name, "-", "-", "-", str(exc))
            continue
        perceiver = PixelPerceiver(None, config, embedder=model, bank=bank, ocr_engine=engine)
        try:
            obs = perceive_still(perceiver, image, seconds)
            engine = perceiver.engine  # one OCR engine for every picture
        finally:
            perceiver.close()
        rec = perceiver.recognition
        row |= {
            "game": obs.game,
            "game_confidence": round(obs.game_confidence, 3),
            "scene": obs.scene,
            "scene_confidence": round(rec.scene_confidence, 3) if rec else 0.0,
            "hud": obs.values(),
            "reason": "" if obs.game else (rec.reason if rec else "nothing to recognise with"),
        }
        if jsonl:
            print(json.dumps(row, ensure_ascii=False), flush=True)
            continue
        game = f"{obs.game} ({obs.game_confidence:.2f})" if obs.game else "-"
        hud = ", ".join(f"{k} {v}" for k, v in obs.values().items()) or "-"
        table.add_row(path.name, game, f"{obs.scene} ({row['scene_confidence']:.2f})", hud, str(row["reason"]))
    if not jsonl:
        out.print(table)


@games_app.command()
def guide(
    name: Annotated[str, typer.Argument(help="The game's id (`kibitz games` lists them), e.g. smb, or your own.")],
    files: Annotated[
        list[Path] | None, typer.Argument(help="Guide files you have: Markdown (.md), text (.txt) or HTML (.html).")
    ] = None,
    show: Annotated[bool, typer.Option("--list", help="List the game's guides (`all --list`: every game's).")] = False,
    forget: Annotated[
        str | None, typer.Option("--remove", help="Forget one guide (its file name), or all of them: --remove all.")
    ] = None,
) -> None:
    """Give kibitz a guide for a game, so its advice can quote it: the files are cut into short passages, each rated
    for spoilers (a "Secrets" or "Walkthrough" section gives the game away) and indexed with the multilingual text
    embedder, on this machine only. When you ask for advice, the passages closest to your question reach the model
    as quoted data, within your spoiler tolerance (`kibitz memory profile --set spoilers=hints`); a guide's text is
    never obeyed as instructions. Adding a file of the same name again replaces it."""
    from kibitz.memory.guides import GuideStore, add_guides, game_name, guides_path

    game = "" if show and name == "all" else game_name(name)
    store = GuideStore(guides_path())
    try:
        if forget is not None:
            count = store.remove(game, None if forget == "all" else forget)
            if not count:
                raise KibitzError(f"kibitz has no guide {forget!r} for {game}; `kibitz games guide {game} --list`.")
            Console().print(f"{game}: forgot {count} guide{'s' if count != 1 else ''}.")
            return
        if show or not files:
            _list_guides(store, game or None)
            return
        from kibitz.memory.embed import shared_embedder

        embedder = shared_embedder()
        with Progress(*_progress().columns, transient=True) as bar:
            task = bar.add_task("indexing", total=None)

            def advance(file: str, done: int, total: int) -> None:
                bar.update(task, description=f"indexing {file}", completed=done, total=total)

            done, problems = add_guides(store, game, files, embedder, advance)
        for problem in problems:
            Console(stderr=True).print(f"[yellow]skipped: {escape(problem)}[/yellow]")
        for item in done:
            removed = f"; {item.orders_removed} line(s) giving orders to an AI left out" if item.orders_removed else ""
            again = " (replaced the earlier copy)" if item.replaced else ""
            Console().print(f"{game}: {item.name}{again}: {item.sections} passages, {item.chars:,} characters{removed}")
        if not done:
            raise KibitzError("No guide was indexed: see why above.")
    finally:
        store.close()


def _list_guides(store: Any, game: str | None) -> None:
    import datetime

    from rich.table import Table

    rows = store.guides(game)
    if not rows:
        Console().print(
            f"kibitz has no guides{' for ' + game if game else ''} yet: `kibitz games guide NAME FILE...` adds one."
        )
        return
    table = Table("game", "guide", "passages", "added")
    for g, file, count, added in rows:
        table.add_row(g, file, str(count), datetime.datetime.fromtimestamp(added).strftime("%Y-%m-%d %H:%M"))
    Console().print(table)
