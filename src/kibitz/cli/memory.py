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
def profile(
    user: UserOpt = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="KEY=VALUE, e.g. spoilers=none (repeat for more).")
    ] = None,
    reset: Annotated[list[str] | None, typer.Option(help="Go back to the persona's default for KEY.")] = None,
    persona: Annotated[str, typer.Option(help="The persona whose defaults apply (`kibitz personas`).")] = "buddy",
    db: PathOpt = None,
) -> None:
    """How kibitz talks to you: spoilers, verbosity, frequency, tone, language, persona. It also changes when you
    say so while playing ("no spoilers", "talk less", "more jokes", "한국어로 말해") or rate a line with /down."""
    from kibitz.core.errors import ConfigError
    from kibitz.core.persona import load_persona
    from kibitz.memory.profile import HELP, Profile, check

    store = _store(db)
    who = _user(user)
    for item in set_ or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set takes KEY=VALUE (e.g. spoilers=none), not {item!r}.")
        store.set_profile(who, key.strip(), check(key.strip(), value))
    for key in reset or []:
        if key not in HELP:
            raise ConfigError(f"Unknown profile key {key!r}; keys: {', '.join(HELP)}.")
        store.set_profile(who, key, "")  # an empty value is no setting: the persona's default applies
    current = Profile.from_dict(store.profile(who))
    base = load_persona(current.persona or persona)
    table = Table("setting", "now", "values", title=f"how kibitz talks to {who}")
    for key, allowed in HELP.items():
        mine = getattr(current, key)
        now = mine if mine is not None else f"{current.effective(key, base) or current.persona or persona} (default)"
        table.add_row(key, now, allowed)
    console.print(table)


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
        tmp = out.with_name(out.name + ".part")
        tmp.write_text(data, encoding="utf-8")
        tmp.replace(out)  # all or nothing: an interrupted export never leaves half a file
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
