"""`kibitz serve`: the companion in your browser and on stream."""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from kibitz.core.errors import KibitzError

console = Console(highlight=False)


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on (127.0.0.1: this machine only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.", min=1, max=65535)] = 8765,
    user: Annotated[str | None, typer.Option("--user", "-u", help="The player whose tokens to print or make.")] = None,
    db: Annotated[
        str | None,
        typer.Option(help="Memory store and tokens: a SQLite file or postgresql://... (shared by several servers)."),
    ] = None,
    backend: Annotated[str | None, typer.Option(help="llamacpp (embedded) | openai (a model server).")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Embedded model name or the server's.")] = None,
    base_url: Annotated[str | None, typer.Option(help="OpenAI-compatible server URL (with --backend openai).")] = None,
    allow_origin: Annotated[
        list[str] | None,
        typer.Option(help="Also accept pages from this origin, e.g. https://kibitz.example.com (repeat)."),
    ] = None,
    new_tokens: Annotated[
        bool, typer.Option("--new-tokens", help="Revoke the user's tokens and print new ones, then serve.")
    ] = False,
    tokens_only: Annotated[
        bool, typer.Option("--tokens-only", help="Make the user's tokens if none (or --new-tokens), then exit.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="Do not load a model: events and state only.")] = False,
    max_sessions: Annotated[int, typer.Option(help="Sessions this server runs at once.", min=1)] = 200,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="YAML config file.")] = None,
    schema: Annotated[bool, typer.Option("--schema", help="Print the WebSocket protocol's JSON Schema, exit.")] = False,
) -> None:
    """Serve the companion app (http://127.0.0.1:8765/) and the OBS overlay (/overlay): pick a built-in game or
    share your screen from the browser, read and rate the companion's lines, ask questions, and look after your
    profile and memories. A game mod can send its own state over the same WebSocket (docs/serve.md)."""
    if schema:
        from kibitz.server.protocol import schema as protocol_schema

        print(json.dumps(protocol_schema(), indent=2))
        return
    import uvicorn

    from kibitz.core.config import load_config
    from kibitz.memory.store import open_store
    from kibitz.server import tokens
    from kibitz.server.app import Server, ServeSettings, create_app
    from kibitz.server.protocol import MAX_FRAME

    overrides: dict[str, Any] = {
        k: v for k, v in {"llm.backend": backend, "llm.model": model, "llm.base_url": base_url}.items() if v
    }
    settings = ServeSettings(
        config=load_config(config, overrides),
        db=db,
        host=host,
        port=port,
        origins=tuple(allow_origin or ()),
        speak=not quiet,
        max_sessions=max_sessions,
    )
    server = Server(settings)
    if not tokens_only:
        _check_port(host, port)
        llm = settings.config.llm
        what = "the store" if quiet else f"the store and the model ({llm.backend}: {llm.model})"
        with console.status(f"Opening {what}..."):
            server.open()  # a missing model or an unreachable database: one sentence, before any token is shown
    who = user or getpass.getuser()
    store = open_store(db)
    try:
        if new_tokens:
            store.drop_tokens(who)
        fresh = not store.tokens(who)
        if fresh:
            player, overlay = tokens.issue(store, who, "player"), tokens.issue(store, who, "overlay")
    finally:
        store.close()
    where = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    if host not in ("127.0.0.1", "localhost", "::1"):
        console.print(
            f"[yellow]Listening on {host}: other machines can reach this server. Put it behind HTTPS (docs/deploy.md)"
            " and pass --allow-origin for the address pages are opened from.[/yellow]"
        )
    if fresh:
        console.print(f"Tokens for [bold]{who}[/bold] (shown once; only their hashes are kept):")
        console.print(f"  companion app  {where}/#token={player}")
        console.print(f"  OBS overlay    {where}/overlay#token={overlay}   (read-only)")
    else:
        console.print(f"Companion app {where}/ and overlay {where}/overlay (tokens for {who} were printed when made;")
        console.print("  `kibitz serve --new-tokens` revokes them and prints new ones).")
    if tokens_only:
        return
    uvicorn.run(
        create_app(settings, server),
        host=host,
        port=port,
        log_level="warning",
        ws_max_size=MAX_FRAME + 1024,
        ws_ping_interval=20,
        ws_ping_timeout=20,
    )


def _check_port(host: str, port: int) -> None:
    """One sentence now, rather than tokens printed and then a bind error."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise KibitzError(f"Cannot listen on {host}:{port} ({exc.strerror}); pick another --port.") from None
