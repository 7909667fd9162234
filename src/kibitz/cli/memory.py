"""`kibitz memory`: what kibitz remembers about you — see it, export it, make it forget. Nothing leaves this
machine."""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from kibitz.memory.store import MemoryStore

memory_app = typer.Typer(
    help="What kibitz remembers about you, per game: show, export, forget (kept on this machine only).",
    no_args_is_help=True,
)
console = Console(highlight=False)

UserOpt = Annotated[str | None, typer.Option(help="Whose memory (default: your login name).")]
PathOpt = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Memory file (default ~/.cache/kibitz/memory/memory.sqlite) or postgresql://user@host/db (pgvector).",
    ),
]


def _store(db: str | None) -> MemoryStore:
    from kibitz.memory.store import open_store

    return open_store(db)


def _user(user: str | None) -> str:
    return user or getpass.getuser()


@memory_app.command()
def show(
    user: UserOpt = None,
    game: Annotated[str | None, typer.Option(help="Only this game.")] = None,
    db: PathOpt = None,
) -> None:
    """Your memories and topic summaries, per game."""
    store = _store(db)
    who = _user(user)
    table = Table("id", "game", "topic", "kind", "memory", title=f"what kibitz remembers about {who}")
    for m in store.memories(who, game):
        table.add_row(str(m.id), m.game or "-", m.topic, m.kind, m.text)
    console.print(table)
    topics = Table("game", "topic", "summary", title="topics")
    for t in store.topics(who, game):
        topics.add_row(t["game"] or "-", t["topic"], t["summary"])
    console.print(topics)
    profile = store.profile(who)
    if profile:
        console.print("profile: " + ", ".join(f"{k}={v}" for k, v in sorted(profile.items())))


@memory_app.command()
def remember(
    text: Annotated[str, typer.Argument(help="What to remember, in your words.")],
    user: UserOpt = None,
    game: Annotated[str, typer.Option(help="The game it is about ('' for none).")] = "",
    topic: Annotated[str, typer.Option(help="bosses, levels, items, strategies, habits, life, or a name.")] = "general",
    kind: Annotated[str, typer.Option(help="fact, event, preference, life, strategy.")] = "fact",
    db: PathOpt = None,
) -> None:
    """Tell kibitz something to remember."""
    from kibitz.memory.records import Memory

    m = _store(db).remember(Memory(_user(user), text, game, topic, kind, source="command"))
    console.print(f"remembered (id {m.id})")


@memory_app.command()
def search(
    query: Annotated[str, typer.Argument(help="What to look for (any language).")],
    user: UserOpt = None,
    game: Annotated[str | None, typer.Option(help="The game being played (others count half).")] = None,
    k: Annotated[int, typer.Option(help="How many.")] = 5,
    db: PathOpt = None,
) -> None:
    """The memories kibitz would recall for a question."""
    table = Table("score", "similarity", "game", "topic", "memory")
    for h in _store(db).search(_user(user), query, game, k):
        table.add_row(f"{h.score:.3f}", f"{h.similarity:.3f}", h.memory.game or "-", h.memory.topic, h.memory.text)
    console.print(table)


@memory_app.command()
def export(
    user: UserOpt = None,
    out: Annotated[Path | None, typer.Option(help="Write the JSON here (default: print it).")] = None,
    db: PathOpt = None,
) -> None:
    """Everything kibitz keeps about you, as JSON."""
    data = json.dumps(_store(db).export(_user(user)), ensure_ascii=False, indent=2)
    if out is None:
        print(data)
    else:
        out.write_text(data, encoding="utf-8")
        console.print(f"saved {out}")


@memory_app.command()
def forget(
    user: UserOpt = None,
    memory_id: Annotated[int | None, typer.Option("--id", help="One memory, by its id (see `show`).")] = None,
    game: Annotated[str | None, typer.Option(help="Everything about one game.")] = None,
    everything: Annotated[bool, typer.Option("--all", help="Everything kibitz keeps about you.")] = False,
    db: PathOpt = None,
) -> None:
    """Make kibitz forget one memory, a game, or everything about you."""
    n = _store(db).forget(_user(user), memory_id, game, everything)
    console.print(f"forgot {n} memor{'y' if n == 1 else 'ies'}")
