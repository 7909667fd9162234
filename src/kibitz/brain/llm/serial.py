"""One model shared by several sessions, one line at a time (the embedded model in `kibitz serve`).

A line waits for the model at most `wait_s`; past that it fails with a clear reason and the session goes on (the
speak policy's merge and drop rules keep the queue short). A prefetch never waits: the cached prefix of one session
is worth nothing to another while the model is busy.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence

from kibitz.brain.llm.base import LLMBackend, Message
from kibitz.core.errors import KibitzError

WAIT_S = 8.0
"""A line older than this is stale anyway (the policy drops events after max_age_s, 5 s by default)."""


class SharedModel:
    """The model and the lock its users take turns on."""

    def __init__(self, backend: LLMBackend, wait_s: float = WAIT_S) -> None:
        self.backend = backend
        self.wait_s = wait_s
        self.lock = threading.Lock()
        self.timeouts = 0
        """Lines that gave up waiting (counted by the thread that gave up, under the lock below)."""
        self._count = threading.Lock()

    def user(self) -> SerialBackend:
        """A backend for one session: the shared model, one line at a time."""
        return SerialBackend(self)

    def close(self, timeout: float = 30.0) -> None:
        """Release the model once no line is using it (a session's thread may still be finishing one)."""
        got = self.lock.acquire(timeout=timeout)
        try:
            self.backend.close()
        finally:
            if got:
                self.lock.release()


class SerialBackend(LLMBackend):
    name = "serial"

    def __init__(self, shared: SharedModel) -> None:
        self._avoid: tuple[str, ...] = ()
        self._lines: tuple[str, ...] = ()
        self._phrases: tuple[str, ...] = ()
        self._own_script = False
        self.shared = shared
        self.context_window = shared.backend.context_window

    def stream(
        self, messages: list[Message], max_tokens: int, temperature: float, stop: list[str] | None = None
    ) -> Iterator[str]:
        shared = self.shared
        if not shared.lock.acquire(timeout=shared.wait_s):
            with shared._count:
                shared.timeouts += 1
            raise KibitzError(
                f"The model was busy with other players' lines for {shared.wait_s:.0f} s, so this line was dropped;"
                " serve many players with a model server (--backend openai, docs/deploy.md)."
            )
        try:
            # Set under the lock: another player's line in between must not take this player's openings.
            shared.backend.avoid_openings(self._avoid)
            shared.backend.avoid_repeating(self._lines, self._phrases)
            if self._own_script:
                shared.backend.start_in_own_script()
            self._avoid, self._lines, self._phrases, self._own_script = (), (), (), False
            yield from shared.backend.stream(messages, max_tokens, temperature, stop)
        finally:
            shared.lock.release()

    def avoid_openings(self, words: Sequence[str]) -> None:
        self._avoid = tuple(words)

    def avoid_repeating(self, lines: Sequence[str], phrases: Sequence[str] = ()) -> None:
        self._lines, self._phrases = tuple(lines), tuple(phrases)

    def start_in_own_script(self) -> None:
        self._own_script = True

    def warm(self, messages: list[Message], abort: threading.Event | None = None, open_end: bool = False) -> None:
        if not self.shared.lock.acquire(blocking=False):
            return  # busy with another session's line: a prefetch is only worth it when the model is free
        try:
            self.shared.backend.warm(messages, abort, open_end)
        finally:
            self.shared.lock.release()

    @property
    def prompt_new(self) -> int | None:  # type: ignore[override]
        return self.shared.backend.prompt_new

    def count_tokens(self, text: str) -> int:
        return self.shared.backend.count_tokens(text)

    def count_prompt(self, messages: list[Message]) -> int:
        return self.shared.backend.count_prompt(messages)

    def close(self) -> None:
        """The shared model outlives each session (SharedModel.close releases it)."""

    @property
    def label(self) -> str:
        return self.shared.backend.label
