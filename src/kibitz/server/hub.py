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

from kibitz.server.metrics import Metrics

OUTBOX = 512
"""Messages waiting for one client (a streamed line is ~20 token messages)."""


@dataclass(eq=False)
class Subscriber:
    user: str
    session: str | None
    """The session it follows; None: every session of its user (an overlay)."""
    outbox: asyncio.Queue[dict[str, Any] | None] = field(default_factory=asyncio.Queue)
    overflowed: bool = False

    def offer(self, message: dict[str, Any]) -> None:
        """On the event loop. Past OUTBOX waiting messages the client is not reading: drop what waits and let the
        sender close the connection with a reason."""
        if self.overflowed:
            return
        if self.outbox.qsize() >= OUTBOX:
            self.overflowed = True
            while not self.outbox.empty():
                self.outbox.get_nowait()
            self.outbox.put_nowait(None)
            return
        self.outbox.put_nowait(message)


class Hub:
    def __init__(self, loop: asyncio.AbstractEventLoop, metrics: Metrics) -> None:
        self.loop = loop
        self.metrics = metrics
        self.subscribers: set[Subscriber] = set()

    def subscribe(self, user: str, session: str | None) -> Subscriber:
        sub = Subscriber(user, session)
        self.subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)

    def publish(self, user: str, session: str, message: dict[str, Any]) -> None:
        """From any thread."""
        if self.loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the server is shutting down
            self.loop.call_soon_threadsafe(self._deliver, user, session, message)

    def _deliver(self, user: str, session: str, message: dict[str, Any]) -> None:
        for sub in list(self.subscribers):
            if sub.user == user and (sub.session is None or sub.session == session):
                sub.offer(message)
