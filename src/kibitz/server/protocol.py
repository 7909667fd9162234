"""The WebSocket protocol of `kibitz serve`, version 1, declared once as pydantic models.

A client's first message is `hello` (its token, what to watch, its role). Then a player sends questions, ratings,
its own game state (`context`, for games kibitz cannot see) and, when it shares its screen, frames as binary
messages (a JPEG, PNG or WebP picture each). The server sends the session's events, each line as it streams
(`token` pieces, then `line`), the live state, and errors, each one clear sentence. With `voice` in its hello, the
player's page streams its microphone as binary messages (AUDIO_MAGIC then 16-bit PCM, 16 kHz mono) and the
server sends what it heard (`heard`), the companion's speech (`audio`, to the page and the overlays) and `hush`
when the player talked over it. `docs/protocol.schema.json` is
generated from these models (`kibitz serve --schema`); a test keeps it current.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

VERSION = 1
MAX_TEXT = 500
"""Characters of a question or a context line."""
MAX_MESSAGE = 16_384
"""Bytes of one JSON message."""
MAX_FRAME = 2_000_000
"""Bytes of one binary frame."""
AUDIO_MAGIC = b"KBAU"
"""A binary message that starts with these 4 bytes is microphone audio: 16-bit little-endian PCM, 16 kHz, mono."""
AUDIO_RATE = 16_000
MAX_AUDIO = 32_000
"""Bytes of PCM in one audio message (1 s); send 20–100 ms at a time."""
SPEECH_RATE = 24_000
"""The sample rate of the companion's speech in `audio` messages."""

Text = Annotated[str, Field(max_length=MAX_TEXT)]
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- what a client sends -------------------------------------------------------------------------------------
class WatchGame(Message):
    """A built-in game, played by kibitz's own player on the server (the demo, and the tests)."""

    kind: Literal["game"] = "game"
    game: Name = "smb"


class WatchScreen(Message):
    """The player's screen or a game window, shared from the browser: frames arrive as binary messages."""

    kind: Literal["screen"] = "screen"
    fps: float = Field(2.0, ge=1.0, le=10.0)
    """The rate the page sends frames at (the newest frame wins when perception is slower)."""


class WatchContext(Message):
    """Nothing to see: a game mod or script sends its own state and events as `context` messages."""

    kind: Literal["context"] = "context"
    title: Annotated[str, Field(max_length=80)] = "the game"


Watch = Annotated[WatchGame | WatchScreen | WatchContext, Field(discriminator="kind")]


class Hello(Message):
    type: Literal["hello"] = "hello"
    v: Literal[1] = 1
    token: Annotated[str, Field(min_length=1, max_length=200)]
    role: Literal["player", "overlay"] = "player"
    """A player starts a session; an overlay (read-only token) shows the lines of its user's sessions."""
    watch: Watch = Field(default_factory=WatchGame)
    persona: Name | None = None
    """A persona from `kibitz personas` (default: the player's profile, else buddy)."""
    voice: bool = False
    """Talk aloud: the server speaks the lines (`audio` messages) and hears the microphone audio this page sends."""
    push_to_talk: bool = False
    """With voice: audio counts only between `talk` messages with pressed true and false (a held key or button)."""


class Question(Message):
    type: Literal["question"] = "question"
    text: Annotated[str, Field(min_length=1, max_length=MAX_TEXT)]


class Rate(Message):
    type: Literal["rate"] = "rate"
    line: int = Field(ge=1)
    """The `line` number of the line rated."""
    rating: Literal["up", "down"]


class ContextEvent(Message):
    type: Name
    """An event type from core/data/events.yaml (death, level_change, boss...) or the game's own."""
    summary: Text
    """One plain sentence of what happened, in the player's terms."""


class Context(Message):
    """The game's own account of its state, sent by a mod or a script: numbers, a scene, text, events."""

    type: Literal["context"] = "context"
    game: Annotated[str, Field(max_length=80)] | None = None
    scene: Name = "gameplay"
    state: dict[Name, int | float | str] = Field(default_factory=dict, max_length=32)
    text: list[Text] = Field(default_factory=list, max_length=8)
    events: list[ContextEvent] = Field(default_factory=list, max_length=8)


class Ping(Message):
    type: Literal["ping"] = "ping"


class Talk(Message):
    """Push-to-talk: the talk key or button went down (true) or up (false)."""

    type: Literal["talk"] = "talk"
    pressed: bool


ClientMessage = Annotated[Hello | Question | Rate | Context | Ping | Talk, Field(discriminator="type")]
CLIENT = TypeAdapter(ClientMessage)


# --- what the server sends -----------------------------------------------------------------------------------
class Welcome(Message):
    type: Literal["welcome"] = "welcome"
    v: int = VERSION
    session: str
    user: str
    role: Literal["player", "overlay"]
    persona: str
    watching: str


class EventOut(Message):
    type: Literal["event"] = "event"
    session: str
    id: int
    t: float
    event: str
    priority: int
    summary: str


class TokenOut(Message):
    type: Literal["token"] = "token"
    session: str
    line: int
    text: str
    at: float
    """When the server had this piece (Unix time, seconds): a client on the same clock can time its own delay."""


class LineOut(Message):
    type: Literal["line"] = "line"
    session: str
    line: int
    text: str
    trigger: str
    first_token_s: float | None
    interrupted: bool


class LineError(Message):
    type: Literal["line_error"] = "line_error"
    session: str
    line: int
    message: str


class StateOut(Message):
    type: Literal["state"] = "state"
    session: str
    t: float
    game: str | None
    game_confidence: float
    scene: str
    fields: dict[str, Any]
    text: list[str]
    recent: list[str]
    """The last events' sentences."""
    decisions: list[str]
    """What the speak policy did lately (spoke, merged, dropped and why)."""
    frames: int
    dropped_frames: int


class Info(Message):
    type: Literal["info"] = "info"
    message: str


class Error(Message):
    type: Literal["error"] = "error"
    code: str
    """bad_message, too_big, too_fast, unauthorized, read_only, bad_frame, session (cannot start), busy, too_slow
    (the client did not read), session_ended, server."""
    message: str


class Pong(Message):
    type: Literal["pong"] = "pong"


class HeardOut(Message):
    """What the server heard the player say (a voice session): a partial while they talk, then the final text."""

    type: Literal["heard"] = "heard"
    session: str
    text: str
    final: bool


class AudioOut(Message):
    """The next piece of the companion's speech, in playing order (about 100 ms; play them back to back)."""

    type: Literal["audio"] = "audio"
    session: str
    seq: int
    rate: int
    pcm16: str
    """Base64 of 16-bit little-endian PCM, mono."""


class Hush(Message):
    """The player talked over the companion: stop its speech now (drop what is queued). `said` is the line as heard."""

    type: Literal["hush"] = "hush"
    session: str
    said: str


ServerMessage = Annotated[
    Welcome | EventOut | TokenOut | LineOut | LineError | StateOut | Info | Error | Pong | HeardOut | AudioOut | Hush,
    Field(discriminator="type"),
]


def parse(raw: str | bytes) -> Question | Rate | Context | Ping | Hello | Talk:
    """A client's message, or ValueError with one sentence saying what is wrong."""
    if len(raw) > MAX_MESSAGE:
        raise ValueError(f"A message may be at most {MAX_MESSAGE} bytes; this one has {len(raw)}.")
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"A message must be one JSON object ({exc.msg} at position {exc.pos}).") from None
    except UnicodeDecodeError:
        raise ValueError("A message must be UTF-8 text.") from None
    if not isinstance(data, dict) or "type" not in data:
        raise ValueError('A message must be a JSON object with a "type" (hello, question, rate, context, ping, talk).')
    kind = data["type"]
    if kind not in CLIENT_TYPES:
        raise ValueError(f"Unknown message type {_short(kind)}; a client sends {', '.join(CLIENT_TYPES)}.")
    try:
        return CLIENT.validate_python(data)
    except ValidationError as exc:
        first = exc.errors(include_input=False, include_url=False)[0]
        where = where_in(first["loc"][1:]) or kind
        return _raise(f"Bad {kind} message: {_short(where, 60, quote=False)}: {first['msg'][:160]}.")


CLIENT_TYPES = ("hello", "question", "rate", "context", "ping", "talk")


def where_in(loc: tuple[int | str, ...] | list[int | str]) -> str:
    """A validation error's location as one line: a client's own key names are quoted, control characters escaped."""
    return ".".join(str(part) if isinstance(part, int) or part.isidentifier() else repr(part) for part in loc)


def _short(value: object, limit: int = 24, quote: bool = True) -> str:
    """A value from a client, cut short for an error message (never echo a huge input back)."""
    text = repr(value) if quote else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _raise(message: str) -> Any:
    raise ValueError(message) from None


def schema() -> dict[str, Any]:
    """The protocol as one JSON Schema document: what clients send and what the server sends."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"kibitz serve WebSocket protocol v{VERSION}",
        "description": __doc__.strip().splitlines()[0] if __doc__ else "",
        "oneOf": [{"$ref": "#/$defs/ClientMessage"}, {"$ref": "#/$defs/ServerMessage"}],
        "$defs": {
            "ClientMessage": CLIENT.json_schema(ref_template="#/$defs/ClientMessage/$defs/{model}"),
            "ServerMessage": TypeAdapter(ServerMessage).json_schema(ref_template="#/$defs/ServerMessage/$defs/{model}"),
        },
    }
