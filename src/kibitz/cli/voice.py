"""`kibitz voice`: speak text to a WAV file, transcribe a recording, list the voices and the sound devices."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from kibitz.core.errors import ConfigError

voice_app = typer.Typer(
    help="Speech in and out, offline: say text with a voice, transcribe a recording, list voices and devices.",
    no_args_is_help=True,
)
console = Console(highlight=False)
status = Console(stderr=True, highlight=False)


@voice_app.command()
def say(
    text: Annotated[str, typer.Argument(help="What to say.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The WAV file to write (16-bit mono).")],
    voice: Annotated[str | None, typer.Option("--voice", "-v", help="A voice from `kibitz voice voices`.")] = None,
    language: Annotated[str, typer.Option("--language", "-l", help="Pick that language's default voice.")] = "en",
    speed: Annotated[float, typer.Option("--speed", help="0.5 (slow) to 2.0 (fast).")] = 1.0,
) -> None:
    """Say TEXT with a voice and write it to a WAV file (for scripts, or to hear a voice before choosing it)."""
    from kibitz.voice.audio import save
    from kibitz.voice.tts import load_voice, voice_for

    if not text.strip():
        raise ConfigError("There is nothing to say: give some text.")
    spec = voice_for(voice, language)
    if spec.quality != "neural":
        status.print(f"[yellow]Using {spec.name}: {spec.about}.[/yellow]")
    with status.status(f"Loading the voice {spec.name}..."):
        engine = load_voice(spec)
    start = time.perf_counter()
    samples = engine.synthesize(text, speed)
    took = time.perf_counter() - start
    save(out, samples, engine.rate)
    seconds = len(samples) / engine.rate
    console.print(
        f"{out}: {seconds:.2f} s of speech at {engine.rate} Hz by {spec.name} "
        f"(made in {took:.2f} s, {took / max(seconds, 1e-9):.2f}× real time)"
    )


@voice_app.command()
def transcribe(
    file: Annotated[Path, typer.Argument(help="A recording: WAV, FLAC, OGG, or anything FFmpeg decodes.")],
    language: Annotated[
        str | None, typer.Option("--language", "-l", help="en, ko, ja, ... (default: detect it).")
    ] = None,
) -> None:
    """Write down what is said in a recording (Whisper base, offline)."""
    from kibitz.voice.asr import Transcriber
    from kibitz.voice.audio import check, load

    samples = load(file)
    for problem in check(samples).problems():
        status.print(f"[yellow]{problem}[/yellow]")
    with status.status("Loading speech recognition..."):
        transcriber = Transcriber(language=language)
    start = time.perf_counter()
    text, detected = transcriber.transcribe_file(samples)
    took = time.perf_counter() - start
    if text:
        console.print(text)
    else:
        status.print("[yellow]No speech was heard in this recording.[/yellow]")
    status.print(f"[dim]{len(samples) / 16000:.1f} s of audio, language {detected}, {took:.2f} s to transcribe[/dim]")


@voice_app.command("voices")
def list_voices() -> None:
    """The voices kibitz can speak with, offline, and which ones need installing."""
    from kibitz.models import store
    from kibitz.models.catalog import MODELS
    from kibitz.voice.tts import _catalogue

    known, defaults = _catalogue()
    table = Table("name", "language", "engine", "quality", "default for", "installed", "about")
    for name, spec in known.items():
        installed = "yes"
        if spec.model:
            path = store.model_path(MODELS.get(spec.model))
            installed = "yes" if path.is_file() else f"no: kibitz models install {spec.model}"
        elif spec.engine == "espeak":
            import shutil

            installed = "yes" if shutil.which("espeak-ng") else "no: apt install espeak-ng"
        default = ", ".join(lang for lang, v in defaults.items() if v == name)
        table.add_row(name, spec.language, spec.engine, spec.quality, default, installed, spec.about)
    console.print(table)


@voice_app.command()
def devices() -> None:
    """The microphones and speakers PortAudio sees (names or numbers for the voice section of a config file)."""
    from kibitz.voice.playback import sound_device

    sd = sound_device()
    table = Table("#", "name", "inputs", "outputs", "default rate")
    for i, dev in enumerate(sd.query_devices()):
        table.add_row(
            str(i),
            dev["name"],
            str(dev["max_input_channels"]),
            str(dev["max_output_channels"]),
            f"{dev['default_samplerate']:.0f}",
        )
    console.print(table)
