"""Wires a session from configuration for `kibitz watch` and `kibitz chat`."""

from __future__ import annotations

import getpass
import statistics
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from kibitz.brain.companion import Companion
from kibitz.brain.llm import make_backend
from kibitz.core.config import DEFAULT_GAME, KibitzConfig, PersonaConfig, load_config
from kibitz.core.errors import KibitzError
from kibitz.core.persona import Persona, load_persona
from kibitz.games import get_game
from kibitz.games.base import GameAdapter
from kibitz.outputs.sinks import Fanout, FileLog, JsonlOutput, Output, TerminalOutput
from kibitz.session import Session, SessionResult, read_questions
from kibitz.sources import make_source

if TYPE_CHECKING:
    from kibitz.memory.live import PlayerMemory


def resolve_game(config: KibitzConfig) -> GameAdapter | None:
    """The game adapter: required for the emulator (default smb), optional for screen/video/images."""
    game_id = config.game or (DEFAULT_GAME if config.source.kind == "emulator" else None)
    if game_id is None:
        return None
    game = get_game(game_id)
    if config.source.kind == "emulator":
        game.check_installed()
    return game


def build_outputs(config: KibitzConfig, speaker: str, jsonl: bool) -> Output:
    outputs: list[Output] = [JsonlOutput() if jsonl else TerminalOutput(speaker)]
    if config.output.log_dir:
        from datetime import datetime

        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        outputs.append(FileLog(Path(config.output.log_dir) / f"session-{stamp}.jsonl"))
    return Fanout(outputs)


def open_memory(
    config: KibitzConfig, persona: Persona, game: GameAdapter | None, status: Console
) -> PlayerMemory | None:
    """The player's memory for this session, or None when it is off or cannot work here (said once, not fatal)."""
    if not config.memory.enabled:
        return None
    from kibitz.memory.live import PlayerMemory
    from kibitz.memory.store import open_store

    try:
        store = open_store(config.memory.db)
    except KibitzError as exc:
        status.print(f"[yellow]Memory is off for this session: {exc.message}[/yellow]")
        return None
    user = config.memory.user or getpass.getuser()
    memory = PlayerMemory(
        store,
        user,
        persona,
        game.id if game else "",
        game.title if game else "the screen",
        question_wait_s=config.memory.question_wait_s,
    )
    chosen = memory.profile.persona
    if chosen and config.persona.name == PersonaConfig().name and chosen != config.persona.name:
        memory.base_persona = load_persona(chosen)  # the player's own choice, unless --persona says otherwise
    return memory


def run_session(
    config_path: Path | None,
    react: bool,
    jsonl: bool,
    speak: bool,
    max_seconds: float | None,
    overrides: dict[str, Any],
) -> SessionResult:
    config = load_config(config_path, overrides)
    jsonl = jsonl or config.output.jsonl
    game = resolve_game(config)
    persona = load_persona(config.persona.name)
    status = Console(stderr=True, highlight=False)
    memory = open_memory(config, persona, game, status)
    if memory is not None:
        persona = memory.persona
    source = make_source(config.source, game, config.seed)
    output = build_outputs(config, persona.name, jsonl)
    companion = None
    if speak:
        with status.status(f"Loading the companion's model ({config.llm.backend}: {config.llm.model})..."):
            backend = make_backend(config.llm)
            companion = Companion(
                backend,
                persona,
                max_tokens=config.llm.max_tokens,
                temperature=config.llm.temperature,
                on_token=output.token,
                on_done=output.done,
                on_error=output.error,
                recall=memory,
            )
            companion.start(warm=True)
    title = game.title if game else config.source.kind
    if not jsonl:
        output.info(f"{persona.name} is watching {title.rstrip('.')}. Type a question and press Enter; Ctrl+C to stop.")
    session = Session(config, game, companion, output, react=react, memory=memory)
    if sys.stdin is not None and not sys.stdin.closed:
        read_questions(sys.stdin, session.questions)
    if memory is not None and not jsonl:
        output.info(f"Profile for {memory.user}: {memory.profile.describe(memory.base_persona)}.")
    try:
        result = session.run(source.frames(), max_seconds=max_seconds)
    finally:
        if companion is not None:
            companion.stop()
        if memory is not None:
            memory.close()
            memory.store.close()
            for problem in memory.errors[:3]:
                status.print(f"[yellow]memory: {problem}[/yellow]")
        source.close()
        output.close()
    if not jsonl:
        print_summary(result)
    return result


def print_summary(result: SessionResult) -> None:
    stats = result.stats
    lat = [u.first_token_latency for u in result.utterances if u.first_token_latency is not None]
    line = (
        f"{stats.frames} frames in {stats.wall_s:.1f}s ({stats.fps:.0f} fps), {len(result.events)} events, "
        f"{len(result.utterances)} lines"
    )
    if lat:
        line += f", first token p50 {statistics.median(lat):.2f}s"
    Console(stderr=True, highlight=False).print(f"[dim]{line}[/dim]")
