"""Who hears what: each WebSocket subscribes to one session (a player's page) or to all of one user's sessions (an
overlay). Messages are handed over from the sessions' threads and delivered on the event loop, each to the
subscribers of that session and user only.

Each subscriber's outbox is bounded: a client that stops reading is cut off with a reason, never buffered without
end, and the others never wait for it.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

OUTBOX = 512
"""Messages waiting for one client (a streamed line is ~20 token messages)."""


@dataclass(eq=False)
class Subscriber:
    user: str
    session: str | None
    """The session it follows; None: every session of its user (an overlay)."""
    outbox: asyncio.Queue[dict[str, Any] | None] = field(default_factory=asyncio.Queue)
    ending: tuple[str, str] | None = None
    """Why the connection is being closed (an error code and its sentence), once it is."""

    @property
    def overflowed(self) -> bool:
        return self.ending is not None and self.ending[0] == "too_slow"

    def offer(self, message: dict[str, Any]) -> None:
        """On the event loop. Past OUTBOX waiting messages the client is not reading: drop what waits and let the
        sender close the connection with a reason."""
        if self.ending is not None:
            return
        if self.outbox.qsize() >= OUTBOX:
            while not self.outbox.empty():
                self.outbox.get_nowait()
            self.close("too_slow", "This client did not read what was sent to it; reconnect.")
            return
        self.outbox.put_nowait(message)

    def close(self, code: str, reason: str) -> None:
        """After what is already waiting, close the connection with this error."""
        if self.ending is None:
            self.ending = (code, reason)
            self.outbox.put_nowait(None)


class Hub:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.subscribers: set[Subscriber] = set()

    def subscribe(self, user: str, session: str | None) -> Subscriber:
        sub = Subscriber(user, session)
        self.subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)

    def publish(self, user: str, session: str, message: dict[str, Any], overlays: bool = True) -> None:
        """From any thread: to the session's own clients and, unless `overlays` is False, its player's overlays."""
        self._call(self._deliver, user, session, message, overlays)

    def end(self, user: str, session: str, reason: str) -> None:
        """From any thread: the session ended on its own; its clients are told why and disconnected."""
        self._call(self._end, user, session, reason)

    def _call(self, fn: Any, *args: Any) -> None:
        if self.loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the server is shutting down
            self.loop.call_soon_threadsafe(fn, *args)

    def _deliver(self, user: str, session: str, message: dict[str, Any], overlays: bool) -> None:
        for sub in list(self.subscribers):
            if sub.user == user and (sub.session == session or (overlays and sub.session is None)):
                sub.offer(message)

    def _end(self, user: str, session: str, reason: str) -> None:
        for sub in list(self.subscribers):
            if sub.user == user and sub.session == session:
                sub.close("session_ended", reason)
