"""Output sinks. Each receives events and streamed utterances; all are safe to call from two threads."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from rich.markup import escape

from kibitz.core.privacy import scrub_json
from kibitz.core.records import Event, Utterance


class Output:
    def event(self, event: Event) -> None:
        """An event was detected."""

    def token(self, utt: Utterance, piece: str) -> None:
        """A visible piece of a line being spoken."""

    def done(self, utt: Utterance) -> None:
        """A line is complete."""

    def draft(self, utt: Utterance, piece: str) -> None:
        """A piece of a line that may be said soon (the answer to a question the player may have finished asking,
        held back until they have): never shown; an output may prepare it (a voice synthesises its first words)."""

    def error(self, utt: Utterance, message: str) -> None:
        """A line failed (backend error)."""

    def record(self, obj: dict[str, Any]) -> None:
        """A machine-readable note (e.g. a perception route decision): logs keep it, the terminal does not."""

    def info(self, message: str) -> None:
        """A status message for humans."""

    def close(self) -> None:
        """Flush and close."""


class TerminalOutput(Output):
    """Human-readable: events as dim lines, the companion's lines streamed as they are generated."""

    def __init__(self, speaker: str, console: Console | None = None) -> None:
        self.console = console or Console(highlight=False)
        self.speaker = speaker
        self.lock = threading.Lock()
        self.streaming: Utterance | None = None
        self.held: list[Event] = []

    def _event_line(self, event: Event) -> None:
        self.console.print(f"[dim]{event.t:7.1f}s  · {event.type:<15} {escape(event.summary)}[/dim]")

    def event(self, event: Event) -> None:
        with self.lock:
            if self.streaming is not None:
                self.held.append(event)  # do not cut into a line being spoken
            else:
                self._event_line(event)

    def token(self, utt: Utterance, piece: str) -> None:
        with self.lock:
            if self.streaming is not utt:
                self.streaming = utt
                self.console.print(f"[bold magenta]{escape(self.speaker)} ›[/bold magenta] ", end="")
            self.console.print(escape(piece), end="", soft_wrap=True)

    def _finish(self, suffix: str = "") -> None:
        if self.streaming is not None:
            latency = self.streaming.first_token_latency
            tag = f" [dim]({latency:.2f}s)[/dim]" if latency is not None else ""
            self.console.print(suffix + tag)
        self.streaming = None
        for event in self.held:
            self._event_line(event)
        self.held.clear()

    def done(self, utt: Utterance) -> None:
        with self.lock:
            self._finish("—" if utt.interrupted else "")

    def error(self, utt: Utterance, message: str) -> None:
        with self.lock:
            self._finish()
            self.console.print(f"[red]{escape(message)}[/red]")

    def info(self, message: str) -> None:
        with self.lock:
            self.console.print(f"[cyan]{escape(message)}[/cyan]")


class JsonlOutput(Output):
    """One JSON object a line for every event and every finished utterance."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self.lock = threading.Lock()

    def _write(self, obj: dict[str, Any]) -> None:
        with self.lock:
            self.stream.write(json.dumps(obj, ensure_ascii=False) + "\n")
            self.stream.flush()

    def event(self, event: Event) -> None:
        self._write(event.to_json())

    def record(self, obj: dict[str, Any]) -> None:
        self._write(obj)

    def done(self, utt: Utterance) -> None:
        self._write(utt.to_json())

    def error(self, utt: Utterance, message: str) -> None:
        self._write({**utt.to_json(), "kind": "error", "message": message})

    def info(self, message: str) -> None:
        self._write({"kind": "info", "message": message})


class FileLog(JsonlOutput):
    """The session log on disk (JSONL, appended and flushed line by line so a crash loses nothing), with personal
    data removed from every string (core.privacy)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        super().__init__(path.open("a", encoding="utf-8"))

    def _write(self, obj: dict[str, Any]) -> None:
        super()._write(scrub_json(obj))

    def close(self) -> None:
        self.stream.close()


class Fanout(Output):
    def __init__(self, outputs: list[Output]) -> None:
        self.outputs = outputs

    def event(self, event: Event) -> None:
        for o in self.outputs:
            o.event(event)

    def token(self, utt: Utterance, piece: str) -> None:
        for o in self.outputs:
            o.token(utt, piece)

    def done(self, utt: Utterance) -> None:
        for o in self.outputs:
            o.done(utt)

    def draft(self, utt: Utterance, piece: str) -> None:
        for o in self.outputs:
            o.draft(utt, piece)

    def error(self, utt: Utterance, message: str) -> None:
        for o in self.outputs:
            o.error(utt, message)

    def record(self, obj: dict[str, Any]) -> None:
        for o in self.outputs:
            o.record(obj)

    def info(self, message: str) -> None:
        for o in self.outputs:
            o.info(message)

    def close(self) -> None:
        for o in self.outputs:
            o.close()
