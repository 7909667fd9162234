"""`kibitz`: watch a game and talk about it, chat, list games, manage models, run benchmarks."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from kibitz.cli.games import LabelOpt, LayoutOpt, parse_label_options
from kibitz.core.errors import KibitzError

app = typer.Typer(
    name="kibitz",
    help="kibitz: an AI game companion that watches your game and talks with you, locally.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True, highlight=False)

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="YAML config file (unknown keys are errors).")]
GameOpt = Annotated[str | None, typer.Option("--game", "-g", help="Game id from `kibitz games` (default: smb).")]
SourceOpt = Annotated[str | None, typer.Option("--source", "-s", help="emulator | screen | video | images.")]
PathOpt = Annotated[str | None, typer.Option("--path", help="Video file or image folder for those sources.")]
FpsOpt = Annotated[float | None, typer.Option("--fps", help="Frames per second handed to perception.")]
MaxOpt = Annotated[float | None, typer.Option("--max-seconds", help="Stop after this much game/media time.")]
JsonlOpt = Annotated[bool, typer.Option("--jsonl", help="Print one JSON object a line per event and utterance.")]
PersonaOpt = Annotated[
    str | None, typer.Option("--persona", "-p", help="Persona name (`kibitz personas`) or YAML path.")
]
BackendOpt = Annotated[
    str | None, typer.Option("--backend", help="llamacpp (embedded) | openai (any compatible server).")
]
ModelOpt = Annotated[
    str | None, typer.Option("--model", "-m", help="Embedded model name, .gguf path, or server model.")
]
UrlOpt = Annotated[
    str | None,
    typer.Option("--base-url", help="OpenAI-compatible server URL, e.g. http://127.0.0.1:8000/v1."),
]
UserOpt = Annotated[
    str | None, typer.Option("--user", "-u", help="Whose memory and profile to use (default: your login name).")
]
NoMemoryOpt = Annotated[
    bool, typer.Option("--no-memory", help="Do not remember this session (and do not recall earlier ones).")
]
VoiceOpt = Annotated[
    bool,
    typer.Option("--voice", help="Talk aloud: the companion speaks its lines and hears you through the microphone."),
]
PushOpt = Annotated[
    bool,
    typer.Option("--push-to-talk", help="With --voice: press Enter to talk (for games whose sound is loud)."),
]
VoiceNameOpt = Annotated[
    str | None, typer.Option("--voice-name", help="With --voice: a voice from `kibitz voice voices`.")
]
NoMicOpt = Annotated[bool, typer.Option("--no-mic", help="With --voice: speak, but take questions typed only.")]
MicFileOpt = Annotated[
    Path | None,
    typer.Option("--mic-file", help="With --voice: hear this recording (WAV, FLAC...) instead of the microphone."),
]
SpeakToOpt = Annotated[
    Path | None,
    typer.Option("--speak-to", help="With --voice: write the companion's voice to this WAV file, not the speakers."),
]
FastOpt = Annotated[bool, typer.Option("--fast", help="Run the game as fast as possible instead of real time.")]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="Seed for the built-in player and sampling.")]
ThreadsOpt = Annotated[int | None, typer.Option("--threads", help="Threads for the embedded model (default 1).")]
LogOpt = Annotated[str | None, typer.Option("--log-dir", help="Also write the session as JSONL into this folder.")]
RegionOpt = Annotated[str | None, typer.Option("--region", help="Screen region LEFT,TOP,WIDTH,HEIGHT.")]
WindowOpt = Annotated[str | None, typer.Option("--window", help="Screen: capture the window whose title has this.")]
VlmUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--vlm-url", help="A vision model's OpenAI-compatible server (vLLM, llama.cpp server...).", show_default=False
    ),
]
VlmModelOpt = Annotated[str | None, typer.Option("--vlm-model", help="The vision model's name on that server.")]
PerceptionOpt = Annotated[
    str | None,
    typer.Option(
        "--perception",
        help="auto (RAM when the emulator gives it, else pixels) | ram | pixels | generic (any screen).",
    ),
]


def _region(value: str | None) -> list[int] | None:
    if value is None:
        return None
    try:
        parts = [int(p) for p in value.split(",")]
    except ValueError:
        parts = []
    if len(parts) != 4:
        raise KibitzError(f"--region must be LEFT,TOP,WIDTH,HEIGHT in pixels (got {value!r}).")
    return parts


def _overrides(**kwargs: Any) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if v is not None}


def _common(
    game: str | None,
    seed: int | None,
    source: str | None,
    path: str | None,
    persona: str | None,
    backend: str | None,
    model: str | None,
    base_url: str | None,
) -> dict[str, Any]:
    """Config overrides from the options `watch` and `chat` share."""
    return _overrides(
        **{
            "game": game,
            "seed": seed,
            "source.kind": source,
            "source.path": path,
            "persona.name": persona,
            "llm.backend": backend,
            "llm.model": model,
            "llm.base_url": base_url,
        }
    )


@app.command()
def watch(
    game: GameOpt = None,
    source: SourceOpt = None,
    path: PathOpt = None,
    fps: FpsOpt = None,
    max_seconds: MaxOpt = None,
    jsonl: JsonlOpt = False,
    persona: PersonaOpt = None,
    backend: BackendOpt = None,
    model: ModelOpt = None,
    base_url: UrlOpt = None,
    fast: FastOpt = False,
    seed: SeedOpt = None,
    threads: ThreadsOpt = None,
    log_dir: LogOpt = None,
    region: RegionOpt = None,
    window: WindowOpt = None,
    perception: PerceptionOpt = None,
    label: LabelOpt = None,
    layout: LayoutOpt = None,
    vlm_url: VlmUrlOpt = None,
    vlm_model: VlmModelOpt = None,
    config: ConfigOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="Detect and print events, but do not speak.")] = False,
    user: UserOpt = None,
    no_memory: NoMemoryOpt = False,
    voice: VoiceOpt = False,
    push_to_talk: PushOpt = False,
    voice_name: VoiceNameOpt = None,
    no_mic: NoMicOpt = False,
    mic_file: MicFileOpt = None,
    speak_to: SpeakToOpt = None,
) -> None:
    """Watch a game and react to what happens. Type a question and press Enter at any time; say how you like it
    ("no spoilers", "talk less", "more jokes") or rate the last line with /up or /down."""
    from kibitz.cli.run import run_session

    run_session(
        config,
        react=True,
        jsonl=jsonl,
        speak=not quiet,
        max_seconds=max_seconds,
        microphone=not no_mic,
        mic_file=mic_file,
        speak_to=speak_to,
        overrides=_common(game, seed, source, path, persona, backend, model, base_url)
        | _overrides(
            **{
                "source.fps": fps,
                "source.realtime": False if fast else None,
                "source.region": _region(region),
                "source.window": window,
                "perception.mode": perception,
                "perception.labels": parse_label_options(label) or None,
                "perception.layout": layout,
                "perception.vlm.base_url": vlm_url,
                "perception.vlm.model": vlm_model,
                "llm.n_threads": threads,
                "output.log_dir": log_dir,
                "output.jsonl": jsonl or None,
                "memory.user": user,
                "memory.enabled": False if no_memory else None,
            }
        )
        | _voice(voice, push_to_talk, voice_name, bool(mic_file or speak_to)),
    )


@app.command()
def chat(
    game: GameOpt = None,
    source: SourceOpt = None,
    path: PathOpt = None,
    persona: PersonaOpt = None,
    backend: BackendOpt = None,
    model: ModelOpt = None,
    base_url: UrlOpt = None,
    jsonl: JsonlOpt = False,
    max_seconds: MaxOpt = None,
    seed: SeedOpt = None,
    config: ConfigOpt = None,
    user: UserOpt = None,
    no_memory: NoMemoryOpt = False,
    voice: VoiceOpt = False,
    push_to_talk: PushOpt = False,
    voice_name: VoiceNameOpt = None,
    no_mic: NoMicOpt = False,
    mic_file: MicFileOpt = None,
    speak_to: SpeakToOpt = None,
) -> None:
    """Ask the companion questions while the game runs; it answers from the game state and what it remembers."""
    from kibitz.cli.run import run_session

    run_session(
        config,
        react=False,
        jsonl=jsonl,
        speak=True,
        max_seconds=max_seconds,
        microphone=not no_mic,
        mic_file=mic_file,
        speak_to=speak_to,
        overrides=_common(game, seed, source, path, persona, backend, model, base_url)
        | _overrides(**{"memory.user": user, "memory.enabled": False if no_memory else None})
        | _voice(voice, push_to_talk, voice_name, bool(mic_file or speak_to)),
    )


def _voice(voice: bool, push_to_talk: bool, name: str | None, extra: bool = False) -> dict[str, Any]:
    return _overrides(
        **{
            "voice.enabled": True if voice or push_to_talk or name or extra else None,
            "voice.push_to_talk": True if push_to_talk else None,
            "voice.voice": name,
        }
    )


@app.command()
def personas() -> None:
    """List the built-in personas."""
    from rich.table import Table

    from kibitz.core.persona import builtin_personas, load_persona

    table = Table("name", "speaker", "language", "verbosity", "spoilers", "style")
    for name in builtin_personas():
        p = load_persona(name)
        table.add_row(name, p.name, p.language, p.verbosity.value, p.spoiler_tolerance.value, p.style)
    Console().print(table)


from kibitz.cli.bench import bench_app  # noqa: E402
from kibitz.cli.games import games_app  # noqa: E402
from kibitz.cli.memory import memory_app  # noqa: E402
from kibitz.cli.models import models_app  # noqa: E402
from kibitz.cli.serve import serve  # noqa: E402
from kibitz.cli.voice import voice_app  # noqa: E402

app.add_typer(models_app, name="models")
app.add_typer(bench_app, name="bench")
app.add_typer(games_app, name="games")
app.add_typer(memory_app, name="memory")
app.add_typer(voice_app, name="voice")
app.command()(serve)


def main() -> None:
    """Entry point: user errors print one sentence and exit non-zero, without a traceback."""
    try:
        app()
    except KibitzError as exc:
        err.print(f"[red]kibitz: {exc.message}[/red]", soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("[dim]stopped[/dim]")
        sys.exit(130)
