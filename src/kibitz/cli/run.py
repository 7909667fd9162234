"""Wires a session from configuration for `kibitz watch` and `kibitz chat`."""

from __future__ import annotations

import getpass
import queue
import statistics
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from rich.console import Console
from rich.markup import escape

from kibitz.brain.companion import Companion
from kibitz.brain.llm import make_backend
from kibitz.core.config import DEFAULT_GAME, KibitzConfig, PersonaConfig, load_config
from kibitz.core.errors import KibitzError
from kibitz.core.persona import Persona, load_persona
from kibitz.core.records import Hearing
from kibitz.games import get_game
from kibitz.games.base import GameAdapter
from kibitz.outputs.sinks import Fanout, FileLog, JsonlOutput, Output, TerminalOutput
from kibitz.session import Session, SessionResult, read_questions
from kibitz.sources import make_source

if TYPE_CHECKING:
    from kibitz.memory.live import PlayerMemory
    from kibitz.voice.live import Voice


def resolve_game(config: KibitzConfig) -> GameAdapter | None:
    """The game adapter: required for the emulator (default smb), optional for screen/video/images."""
    game_id = config.game or (DEFAULT_GAME if config.source.kind == "emulator" else None)
    if game_id is None:
        return None
    game = get_game(game_id)
    if config.source.kind == "emulator":
        game.check_installed()
    return game


def build_outputs(config: KibitzConfig, speaker: str, jsonl: bool, first: list[Output] | None = None) -> Output:
    """The session's sinks; `first` (the voice) hears each line before the screen and the log do."""
    outputs: list[Output] = [*(first or []), JsonlOutput() if jsonl else TerminalOutput(speaker)]
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


def open_voice(
    config: KibitzConfig,
    persona: Persona,
    ask: Callable[[str], None],
    status: Console,
    microphone: bool,
    mic_file: Path | None = None,
    speak_to: Path | None = None,
    hearing: Callable[[Hearing], None] | None = None,
) -> Voice | None:
    """The session's voice, started (speakers, and the microphone unless `microphone` is False), or None when it
    cannot work here: said in one sentence, and the session goes on in text."""
    from kibitz.voice.live import Voice

    try:
        with status.status("Loading the voice (speech recognition, voice activity, text to speech)..."):
            voice = Voice.open(config.voice, persona, on_question=ask, on_hearing=hearing)
    except KibitzError as exc:
        status.print(f"[yellow]Voice is off for this session: {exc.message}[/yellow]")
        return None
    try:
        voice.start(microphone=microphone, speakers=True, mic_file=mic_file, speak_to=speak_to)
    except KibitzError as exc:
        voice.close()
        status.print(f"[yellow]Voice is off for this session: {exc.message} Type your questions instead.[/yellow]")
        return None
    return voice


def run_session(
    config_path: Path | None,
    react: bool,
    jsonl: bool,
    speak: bool,
    max_seconds: float | None,
    overrides: dict[str, Any],
    microphone: bool = True,
    mic_file: Path | None = None,
    speak_to: Path | None = None,
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
    asked: queue.Queue[str] = queue.Queue()
    hearing: queue.Queue[Hearing] = queue.Queue()

    def heard(text: str) -> None:
        if not jsonl:
            status.print(f"[green]you ›[/green] {escape(text)}")
        asked.put(text)

    voice = (
        open_voice(config, persona, heard, status, microphone, mic_file, speak_to, hearing.put)
        if config.voice.enabled and speak
        else None
    )
    output = build_outputs(config, persona.name, jsonl, [voice.output] if voice else None)
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
                on_draft=output.draft,
                on_error=output.error,
                recall=memory,
            )
            companion.start(warm=True)
        if voice is not None:
            voice.attach(companion)
    title = game.title if game else config.source.kind
    if not jsonl:
        output.info(f"{persona.name} is watching {title.rstrip('.')}. Type a question and press Enter; Ctrl+C to stop.")
    session = Session(config, game, companion, output, react=react, memory=memory)
    session.questions, session.hearing = asked, hearing
    session.prefetch_questions = voice is not None  # questions come aloud: their prompt's head is kept evaluated
    if voice is not None:
        _wire_voice(voice, session, output, jsonl)
    if sys.stdin is not None and not sys.stdin.closed:
        if voice is not None and config.voice.push_to_talk and voice.microphone is not None:
            read_push_to_talk(sys.stdin, session.questions, voice)
        else:
            read_questions(sys.stdin, session.questions)
    if memory is not None and not jsonl:
        output.info(f"Profile for {memory.user}: {memory.profile.describe(memory.base_persona)}.")
    try:
        result = session.run(source.frames(), max_seconds=max_seconds)
    finally:
        if companion is not None:
            companion.stop()
        if voice is not None:
            voice.close()
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


def _wire_voice(voice: Voice, session: Session, output: Output, jsonl: bool) -> None:
    """Say what the voice heard and what a barge-in cut, in the terminal and the log."""
    from kibitz.voice.live import Cut

    def cut(record: Cut) -> None:
        if session.last_line and record.heard and session.last_line.startswith(record.heard):
            session.last_line = record.heard
        output.record({"kind": "barge_in", "t": round(record.utt.t, 3), "said": record.heard, "unsaid": record.unsaid})

    voice.on_cut = cut
    if voice.notice and not jsonl:
        output.info(voice.notice)
    for problem in getattr(voice.microphone, "problems", []):
        output.info(problem)
    if not jsonl:
        how = "press Enter, talk, press Enter again" if voice.config.push_to_talk else "just talk"
        mic = f"To ask aloud, {how}." if voice.microphone is not None else "The microphone is off: type to ask."
        output.info(f"{persona_voice(voice)} {mic}")


def persona_voice(voice: Voice) -> str:
    return f"Speaking with the voice {voice.spec.name} ({voice.spec.about})."


def read_push_to_talk(stream: TextIO, into: queue.Queue[str], voice: Voice) -> threading.Thread:
    """Push-to-talk in a terminal: an empty line (Enter) starts listening, the next one ends the question; any
    other line is a typed question."""

    def run() -> None:
        talking = False
        for line in stream:
            text = line.strip()
            if text:
                into.put(text)
                continue
            talking = not talking
            voice.ear.talk(talking)
            print("(listening... press Enter when done)" if talking else "(got it)", file=sys.stderr)

    thread = threading.Thread(target=run, name="kibitz-push-to-talk", daemon=True)
    thread.start()
    return thread


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
