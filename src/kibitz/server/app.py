"""The `kibitz serve` application: the companion app and overlay pages, the WebSocket session API, REST for the
profile, memories and sessions, /health and /metrics.

Everything slow runs off the event loop: sessions on their own threads, store calls in the thread pool, the
embedded model loaded in a thread at start. The server keeps no state a restart would lose: tokens, profiles and
memories live in the store (SQLite, or PostgreSQL shared by several instances).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlparse

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Query, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocketDisconnect, WebSocketState

import kibitz
from kibitz.brain.llm.base import BACKENDS, LLMBackend, make_backend
from kibitz.core.config import KibitzConfig
from kibitz.core.errors import ConfigError, KibitzError
from kibitz.memory.store import MemoryStore, open_store
from kibitz.server import protocol as p
from kibitz.server import tokens
from kibitz.server.hub import Hub, Subscriber
from kibitz.server.live import LiveSession, Services
from kibitz.server.metrics import Metrics

if TYPE_CHECKING:
    from kibitz.voice.asr import Transcriber

log = logging.getLogger(__name__)

LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
HELLO_TIMEOUT_S = 10.0
AGAIN = ("busy", "too_slow", "session_ended")
"""Refusals a client may retry (close code 1013): the overlay reconnects after them, not after the others."""
RATE = 30.0
"""Messages a second one client may send (frames included), in bursts of up to 2 s worth."""
STATIC = resources.files("kibitz.server") / "static"


@dataclass
class ServeSettings:
    config: KibitzConfig
    db: str | None = None
    """The memory store (and tokens): a SQLite path or postgresql:// URL (default: the user's SQLite file)."""
    host: str = "127.0.0.1"
    port: int = 8765
    origins: tuple[str, ...] = ()
    """Origins allowed besides the loopback ones, e.g. https://kibitz.example.com behind a reverse proxy."""
    speak: bool = True
    """Load the model and talk; False: events and state only."""
    warm: bool = True
    max_sessions: int = 200
    rate: float = RATE
    extra_hosts: tuple[str, ...] = field(default_factory=tuple)
    """Host names accepted besides loopback and the origins' (tests use "testserver")."""
    backend: Callable[[], LLMBackend] | None = None
    """Overrides how each session gets its model (tests)."""


@dataclass(frozen=True)
class Caller:
    user: str
    scope: str


class Server:
    """What the routes share: the store (behind a lock: one connection), the hub, the live sessions."""

    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.store_lock = threading.Lock()
        self.store: MemoryStore | None = None
        self.embedder: Any = None
        self.hub: Hub | None = None
        self.sessions: dict[str, LiveSession] = {}
        self.backend: Callable[[], LLMBackend] | None = None
        self.shared_model: Any = None
        self.started = time.time()
        self._transcriber: Transcriber | None = None
        self._asr_lock = threading.Lock()

    # --- start and stop ------------------------------------------------------------------------------------
    def open(self) -> None:
        """Open the store and load the model (slow: on a thread)."""
        from kibitz.memory.embed import shared_embedder

        self.embedder = shared_embedder()  # one pool for every session: questions go first
        self.embedder.query("warm up")  # load the model now, not at the first player's first question
        self.store = open_store(self.settings.db, embedder=self.embedder)
        self.backend = self.settings.backend or (self._backend() if self.settings.speak else None)

    def _backend(self) -> Callable[[], LLMBackend]:
        llm = self.settings.config.llm
        if BACKENDS.get(llm.backend).concurrent:  # a model server: each session its own client
            return lambda: make_backend(llm)
        from kibitz.brain.llm.serial import SharedModel

        self.shared_model = SharedModel(make_backend(llm))
        return self.shared_model.user

    def close(self) -> None:
        for live in list(self.sessions.values()):
            live.stop()
        for live in list(self.sessions.values()):
            live.join(timeout=10)  # a session that never started returns at once
        if self.shared_model is not None:
            self.shared_model.close()
        if self.store is not None:
            self.store.close()

    # --- access ----------------------------------------------------------------------------------------------
    def caller(self, token: str) -> Caller | None:
        assert self.store is not None
        with self.store_lock:
            found = tokens.owner(self.store, token)
        return None if found is None else Caller(*found)

    def origin_ok(self, origin: str | None) -> bool:
        """A page may open a WebSocket only from a loopback origin or one the operator allowed; a program that sends
        no Origin (a game mod) needs its token like everyone else."""
        if origin is None:
            return True
        if origin in self.settings.origins:
            return True
        parsed = urlparse(origin)
        return parsed.scheme in ("http", "https") and parsed.hostname in LOOPBACK and parsed.port == self.settings.port

    def hosts(self) -> list[str]:
        names = [*LOOPBACK, *self.settings.extra_hosts]
        names += [h for h in (urlparse(o).hostname for o in self.settings.origins) if h]
        if self.settings.host not in ("0.0.0.0", "::"):
            names.append(self.settings.host)
        return names

    def services(self) -> Services:
        assert self.hub is not None
        hub = self.hub

        def publish(live: LiveSession, message: dict[str, Any], overlays: bool) -> None:
            hub.publish(live.user, live.id, message, overlays)

        def end(live: LiveSession, reason: str) -> None:
            hub.end(live.user, live.id, reason)

        return Services(
            config=self.settings.config,
            metrics=self.metrics,
            publish=publish,
            end=end,
            backend=self.backend,
            embedder=self.embedder,
            db=self.settings.db,
            warm=self.settings.warm,
            transcriber=self.transcriber,
        )

    def transcriber(self) -> Transcriber:
        """The one speech recogniser of this server (Whisper base), loaded at the first voice session; ModelError
        when the voice extra or its model is missing."""
        with self._asr_lock:
            if self._transcriber is None:
                from kibitz.voice.asr import Transcriber

                self._transcriber = Transcriber()
            return self._transcriber

    def live_of(self, user: str) -> list[LiveSession]:
        """From the thread pool too: a copy, as the event loop adds and removes sessions."""
        return [s for s in list(self.sessions.values()) if s.user == user]

    def reap(self) -> None:
        """Forget the sessions whose thread has ended (or that were stopped before they started)."""
        for sid, live in list(self.sessions.items()):
            if not live.alive and (live.ready.is_set() or live.stopped):
                self.sessions.pop(sid, None)


# --- REST --------------------------------------------------------------------------------------------------
bearer = HTTPBearer(auto_error=False, description="A player token (read and write) or an overlay token (read).")


def get_server(request: Request) -> Server:
    server: Server = request.app.state.server
    return server


def caller(request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Caller:
    if credentials is None:
        raise HTTPException(401, "A token is needed: send `Authorization: Bearer <token>` (printed by kibitz serve).")
    found = get_server(request).caller(credentials.credentials)
    if found is None:
        raise HTTPException(401, "This token is not valid; `kibitz serve --new-tokens` makes new ones.")
    return found


def player(who: Annotated[Caller, Depends(caller)]) -> Caller:
    if who.scope != "player":
        raise HTTPException(403, "This token is read-only (an overlay token); use the player token to change things.")
    return who


class ErrorOut(BaseModel):
    detail: str
    """One sentence: what is wrong and how to fix it."""


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "No token, or a token that is not valid."},
    403: {"model": ErrorOut, "description": "A read-only (overlay) token asked to change something."},
    422: {"model": ErrorOut, "description": "A parameter or the body is not what this endpoint takes."},
}


class ProfileOut(BaseModel):
    user: str
    settings: dict[str, str | None]
    """Each setting, None where the persona's default applies."""
    allowed: dict[str, str]


class ProfileIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    spoilers: str | None = Field(None, max_length=40)
    verbosity: str | None = Field(None, max_length=40)
    frequency: str | None = Field(None, max_length=40)
    tone: str | None = Field(None, max_length=40)
    language: str | None = Field(None, max_length=40)
    persona: str | None = Field(None, max_length=64)


class MemoryOut(BaseModel):
    id: int | None
    game: str
    topic: str
    kind: str
    text: str
    score: float | None = None


class Forgotten(BaseModel):
    forgotten: int


class SessionOut(BaseModel):
    session: str
    watching: str
    title: str
    started: float
    alive: bool


class Health(BaseModel):
    status: str
    version: str
    sessions: int
    uptime_s: float


def _profile(server: Server, user: str) -> ProfileOut:
    from kibitz.memory.profile import HELP, Profile

    assert server.store is not None
    with server.store_lock:
        current = Profile.from_dict(server.store.profile(user))
    values = current.to_dict()
    return ProfileOut(user=user, settings={k: values.get(k) for k in HELP}, allowed=HELP)


Who = Annotated[Caller, Depends(caller)]
Player = Annotated[Caller, Depends(player)]


def build_routes(app: FastAPI) -> None:
    api = APIRouter(prefix="/api/v1", responses=ERRORS)

    @app.get("/health", tags=["server"])
    def health(request: Request) -> Health:
        server = get_server(request)
        return Health(
            status="ok",
            version=kibitz.__version__,
            sessions=len(server.sessions),
            uptime_s=round(time.time() - server.started, 1),
        )

    @app.get("/metrics", tags=["server"], response_class=PlainTextResponse)
    def metrics(request: Request) -> PlainTextResponse:
        text = get_server(request).metrics.text()
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4")

    @api.get("/me", tags=["player"])
    def me(who: Who) -> dict[str, str]:
        return {"user": who.user, "scope": who.scope}

    @api.get("/profile", tags=["player"])
    def get_profile(request: Request, who: Who) -> ProfileOut:
        return _profile(get_server(request), who.user)

    @api.put("/profile", tags=["player"])
    def put_profile(request: Request, who: Player, change: ProfileIn) -> ProfileOut:
        """Set some settings; an empty string goes back to the persona's default. Running sessions follow."""
        from kibitz.core.persona import load_persona
        from kibitz.memory.profile import check

        server = get_server(request)
        assert server.store is not None
        updates = change.model_dump(exclude_unset=True)
        checked: dict[str, str] = {}
        try:
            for key, value in updates.items():
                value = (value or "").strip()
                checked[key] = check(key, value) if value else ""
                if key == "persona" and value:
                    load_persona(value)
        except (ConfigError, KibitzError) as exc:
            raise HTTPException(422, exc.message) from None
        with server.store_lock:
            for key, value in checked.items():
                server.store.set_profile(who.user, key, value)
        for live in server.live_of(who.user):
            live.profile_changed()
        return _profile(server, who.user)

    @api.get("/memories", tags=["memory"])
    def memories(
        request: Request,
        who: Who,
        q: Annotated[str | None, Query(max_length=p.MAX_TEXT, description="Search: the closest memories.")] = None,
        game: Annotated[str | None, Query(max_length=80)] = None,
        k: Annotated[int, Query(ge=1, le=100)] = 20,
    ) -> list[MemoryOut]:
        server = get_server(request)
        assert server.store is not None
        with server.store_lock:
            if q:
                hits = server.store.search(who.user, q, game, k)
                return [MemoryOut(**_memory(h.memory), score=round(h.score, 3)) for h in hits]
            return [MemoryOut(**_memory(m)) for m in server.store.memories(who.user, game)]

    @api.delete("/memories/{memory_id}", tags=["memory"])
    def forget_one(request: Request, who: Player, memory_id: Annotated[int, Path(ge=1, le=2**62)]) -> Forgotten:
        server = get_server(request)
        assert server.store is not None
        with server.store_lock:
            return Forgotten(forgotten=server.store.forget(who.user, memory_id=memory_id))

    @api.delete("/memories", tags=["memory"])
    def forget_many(
        request: Request,
        who: Player,
        game: Annotated[str | None, Query(max_length=80, description="Everything about this game.")] = None,
        everything: Annotated[bool, Query(alias="all", description="Everything about you.")] = False,
    ) -> Forgotten:
        server = get_server(request)
        assert server.store is not None
        if game is None and not everything:
            raise HTTPException(422, "Say what to forget: ?game=NAME or ?all=true (or DELETE /api/v1/memories/ID).")
        with server.store_lock:
            forgotten = server.store.forget(who.user, game=game, everything=everything)
        for live in server.live_of(who.user):
            live.profile_changed()  # "everything" takes the profile too
        return Forgotten(forgotten=forgotten)

    @api.get("/export", tags=["memory"])
    def export(request: Request, who: Who) -> Response:
        """Everything kibitz keeps about you, as a JSON file."""
        server = get_server(request)
        assert server.store is not None
        with server.store_lock:
            data = server.store.export(who.user)
        body = json.dumps(data, ensure_ascii=False, indent=2)
        headers = {"Content-Disposition": 'attachment; filename="kibitz-memory.json"'}
        return Response(body, media_type="application/json", headers=headers)

    @api.get("/sessions", tags=["player"])
    def sessions(request: Request, who: Who) -> list[SessionOut]:
        """Your sessions running on this instance."""
        return [SessionOut(**s.describe()) for s in get_server(request).live_of(who.user)]

    @api.get("/choices", tags=["player"])
    def choices(who: Who) -> dict[str, list[str]]:
        """What a session can watch and who can talk: built-in games and personas."""
        from kibitz.core.persona import builtin_personas
        from kibitz.games.base import GAMES

        return {"games": GAMES.names(), "personas": builtin_personas()}

    app.include_router(api)


def _memory(m: Any) -> dict[str, Any]:
    return {"id": m.id, "game": m.game, "topic": m.topic, "kind": m.kind, "text": m.text}


# --- the WebSocket -----------------------------------------------------------------------------------------
class Bucket:
    """A token bucket: `rate` messages a second, bursts of 2 s worth."""

    def __init__(self, rate: float) -> None:
        self.rate, self.capacity = rate, 2 * rate
        self.level, self.at = self.capacity, time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.at) * self.rate)
        self.at = now
        if self.level < 1:
            return False
        self.level -= 1
        return True


class Connection:
    """One WebSocket: hello, then the client's messages in, the session's messages out."""

    def __init__(self, server: Server, ws: WebSocket) -> None:
        self.server, self.ws = server, ws
        self.bucket = Bucket(server.settings.rate)
        self.audio_bucket = Bucket(50.0)
        self.live: LiveSession | None = None
        self.sub: Subscriber | None = None
        self._last_error = 0.0

    async def refuse(self, code: str, message: str, close: bool = True) -> None:
        """Say what is wrong, then close: 1013 (try again later) when it may pass, 1008 (policy) when it will not."""
        self.server.metrics.add("rejected")
        if self.ws.application_state == WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await self.ws.send_json(p.Error(code=code, message=message).model_dump())
                if close:
                    reason = message.encode()[:120].decode(errors="ignore")  # a close frame's reason: 123 bytes
                    await self.ws.close(code=1013 if code in AGAIN else 1008, reason=reason)

    def complain(self, code: str, message: str) -> None:
        """An error about one message (the connection stays), at most a few a second."""
        self.server.metrics.add("rejected")
        now = time.monotonic()
        if self.sub is not None and now - self._last_error >= 0.2:
            self._last_error = now
            self.sub.offer(p.Error(code=code, message=message).model_dump())

    async def run(self) -> None:
        hello = await self._hello()
        if hello is None:
            return
        who = await asyncio.to_thread(self.server.caller, hello.token)
        if who is None:
            await self.refuse("unauthorized", "This token is not valid; `kibitz serve --new-tokens` makes new ones.")
            return
        assert self.server.hub is not None
        if hello.role == "overlay":
            self.sub = self.server.hub.subscribe(who.user, None)
            welcome = p.Welcome(session="*", user=who.user, role="overlay", persona="", watching="every session")
        else:
            if who.scope != "player":
                await self.refuse("read_only", "An overlay token can only watch: connect with role overlay.")
                return
            try:
                live = await asyncio.to_thread(LiveSession, self.server.services(), who.user, hello)
            except (KibitzError, ConfigError) as exc:
                await self.refuse("session", exc.message)
                return
            self.server.reap()  # checked and taken with no await between: hellos at once cannot pass the limit
            if len(self.server.sessions) >= self.server.settings.max_sessions:
                await self.refuse("busy", "The server has as many sessions as it is allowed; try again later.")
                return
            self.live = live
            self.sub = self.server.hub.subscribe(who.user, live.id)
            self.server.sessions[live.id] = live
            welcome = p.Welcome(
                session=live.id, user=who.user, role="player", persona=hello.persona or "", watching=live.title
            )
        sender: asyncio.Task[None] | None = None
        try:
            await self.ws.send_json(welcome.model_dump())
            if self.live is not None:
                self.live.start()
            sender = asyncio.create_task(self._send())
            await self._receive()
        except (WebSocketDisconnect, RuntimeError):
            pass  # the client left during the welcome
        finally:
            if sender is not None:
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await sender
            self.server.hub.unsubscribe(self.sub)
            if self.live is not None:
                self.live.stop()

    async def _hello(self) -> p.Hello | None:
        try:
            raw = await asyncio.wait_for(self.ws.receive(), HELLO_TIMEOUT_S)
        except TimeoutError:
            await self.refuse("bad_message", f"Send a hello message within {HELLO_TIMEOUT_S:.0f} s of connecting.")
            return None
        text = raw.get("text")
        if raw.get("type") == "websocket.disconnect":
            return None
        if text is None:
            await self.refuse("bad_message", "The first message must be a JSON hello, not binary data.")
            return None
        try:
            msg = p.parse(text)
        except ValueError as exc:
            await self.refuse("bad_message", str(exc))
            return None
        if not isinstance(msg, p.Hello):
            await self.refuse("bad_message", "The first message must be a hello with your token.")
            return None
        return msg

    async def _send(self) -> None:
        assert self.sub is not None
        while True:
            message = await self.sub.outbox.get()
            if message is None:
                code, reason = self.sub.ending or ("too_slow", "")
                if code == "too_slow":
                    self.server.metrics.add("disconnected_slow")
                await self.refuse(code, reason)
                return
            await self.ws.send_json(message)

    async def _receive(self) -> None:
        while True:
            try:
                raw = await self.ws.receive()
            except (WebSocketDisconnect, RuntimeError):
                return
            if raw.get("type") == "websocket.disconnect":
                return
            self.server.metrics.add("messages")
            data = raw.get("bytes")
            if data is not None and data[:4] == p.AUDIO_MAGIC:
                self._audio(data[4:])
                continue
            if not self.bucket.take():
                self.complain("too_fast", f"At most {self.server.settings.rate:.0f} messages a second; slow down.")
                continue
            if raw.get("bytes") is not None:
                self._frame(raw["bytes"])
                continue
            try:
                msg = p.parse(raw.get("text") or "")
            except ValueError as exc:
                self.complain("bad_message", str(exc))
                continue
            self._dispatch(msg)

    def _audio(self, pcm: bytes) -> None:
        """Microphone audio for a voice session (its own budget: 50 messages a second)."""
        if self.live is None or not self.live.voice_wanted:
            self.complain("bad_message", 'Audio is for a player session that said "voice": true in its hello.')
        elif not self.audio_bucket.take():
            self.complain("too_fast", "At most 50 audio messages a second; send 20-100 ms of audio in each.")
        elif len(pcm) > p.MAX_AUDIO or len(pcm) % 2:
            self.complain(
                "too_big" if len(pcm) > p.MAX_AUDIO else "bad_message",
                f"An audio message carries 16-bit PCM, at most {p.MAX_AUDIO} bytes; this one has {len(pcm)}.",
            )
        else:
            self.live.hear(pcm)

    def _frame(self, data: bytes) -> None:
        if self.live is None or not isinstance(self.live.watch, p.WatchScreen):
            self.complain("bad_message", "Frames are for a session watching a shared screen (watch kind screen).")
        elif len(data) > p.MAX_FRAME:
            self.complain("too_big", f"A frame may be at most {p.MAX_FRAME} bytes; this one has {len(data)}.")
        else:
            self.live.frames.put(data)

    def _dispatch(self, msg: Any) -> None:
        assert self.sub is not None
        if isinstance(msg, p.Ping):
            self.sub.offer(p.Pong().model_dump())
            return
        if self.live is None:
            self.complain("read_only", "An overlay only watches; questions and ratings come from the player's app.")
            return
        if isinstance(msg, p.Hello):
            self.complain("bad_message", "This connection already said hello; open a new one for another session.")
        elif isinstance(msg, p.Question):
            self.live.ask(msg.text)
        elif isinstance(msg, p.Talk):
            self.live.talk(msg.pressed)
        elif isinstance(msg, p.Rate):
            if not self.live.rate(msg.line, 1 if msg.rating == "up" else -1):
                self.complain("bad_message", f"No recent line {msg.line} to rate in this session.")
        elif isinstance(msg, p.Context):
            if any(e.type == "question" for e in msg.events):
                self.complain("bad_message", "A context event cannot be a question; send a question message.")
            elif not self.live.context(msg):
                self.complain("too_fast", "The session is behind on context messages; send fewer.")


# --- the app -----------------------------------------------------------------------------------------------
def page(name: str) -> HTMLResponse:
    return HTMLResponse((STATIC / name).read_text(encoding="utf-8"), headers={"Cache-Control": "no-cache"})


def create_app(settings: ServeSettings, server: Server | None = None) -> FastAPI:
    """The app; `server` may be opened already (`kibitz serve` loads the model first, so that a missing model is one
    clear sentence before anything listens)."""
    server = server or Server(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if server.store is None:
            await asyncio.to_thread(server.open)
        server.hub = Hub(asyncio.get_running_loop())
        try:
            yield
        finally:
            await asyncio.to_thread(server.close)

    app = FastAPI(
        title="kibitz serve",
        version=kibitz.__version__,
        description="The kibitz companion's session, profile and memory API. The live session is a WebSocket at "
        "/ws (protocol: docs/protocol.schema.json).",
        lifespan=lifespan,
        docs_url=None,  # the interactive docs load scripts from a CDN; everything here stays local (/openapi.json)
        redoc_url=None,
    )
    app.state.server = server
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=server.hosts())

    @app.exception_handler(KibitzError)
    async def kibitz_error(request: Request, exc: KibitzError) -> JSONResponse:
        return JSONResponse({"detail": exc.message}, status_code=503)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        """One sentence, like every other error (FastAPI's default is a list of objects)."""
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "not valid"}
        where = p.where_in(tuple(first.get("loc", ()))) or "request"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        return JSONResponse({"detail": f"Bad {where}: {first.get('msg', 'not valid')}{more}."}, status_code=422)

    build_routes(app)

    @app.get("/", include_in_schema=False)
    def app_page() -> HTMLResponse:
        return page("app.html")

    @app.get("/overlay", include_in_schema=False)
    def overlay_page() -> HTMLResponse:
        return page("overlay.html")

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        if not server.origin_ok(websocket.headers.get("origin")):
            await websocket.close(code=1008, reason="This page's origin may not open kibitz sessions.")
            return
        await websocket.accept()
        with server.metrics.lock:
            server.metrics.clients += 1
        try:
            await Connection(server, websocket).run()
        finally:
            with server.metrics.lock:
                server.metrics.clients -= 1

    return app
