"""The LLM backend contract: stream a chat completion token by token."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import Any, TypedDict

from kibitz.core.config import LLMConfig
from kibitz.core.registry import Registry


class Message(TypedDict):
    role: str
    content: str


class LLMBackend(ABC):
    name: str
    concurrent: bool = False
    """It serves several sessions at once (a model server); otherwise sessions share it one line at a time."""
    context_window: int = 2048
    """Tokens a prompt and its reply may take together (the embedded model's n_ctx; for a server, llm.n_ctx)."""
    prompt_new: int | None = None
    """Prompt tokens the last `stream` had to evaluate, the cached prefix left out (None: the backend cannot say)."""
    hurried_s: float = 0.0
    """Seconds spent hurrying so far (`hurry`): what the game lent the model."""

    @abstractmethod
    def stream(
        self, messages: list[Message], max_tokens: int, temperature: float, stop: list[str] | None = None
    ) -> Iterator[str]:
        """Yield the reply's text pieces as they are generated."""

    def warm(self, messages: list[Message], abort: threading.Event | None = None, open_end: bool = False) -> None:
        """Pre-process a prompt prefix so a later request that starts with it is fast.

        The default is a one-token request: it also checks the backend answers at all (a server with prefix
        caching, such as vLLM, SGLang or llama.cpp server, keeps the prompt). Backends that can stop part-way
        override this, check `abort`, and return early when it is set. `open_end`: the last message is still
        being written (a question the player is asking); a backend that can evaluates the prompt only up to its
        last word, not the template's end of the turn.
        """
        for _ in self.stream(messages, max_tokens=1, temperature=0.0):
            pass

    def hurry(self, on: bool) -> None:  # noqa: B027 - optional hook
        """From now until `hurry(False)`, spend more of the machine on what comes next: the player is waiting for
        it (a backend that cannot does nothing). Called between two pieces of a stream, on the thread using it."""

    def avoid_openings(self, words: Sequence[str]) -> None:  # noqa: B027 - optional hook
        """The next `stream` should not start with any of these words (the companion's last lines began with them):
        a backend that can steer its first token does; the others do nothing."""

    def start_in_own_script(self) -> None:  # noqa: B027 - optional hook
        """The next `stream` should not start with a Latin letter or digit (a Korean or Japanese line starts in its
        own script, and then mostly stays in it): a backend that can steer its first token does."""

    def avoid_repeating(self, lines: Sequence[str], phrases: Sequence[str] = ()) -> None:  # noqa: B027
        """The next `stream` should not copy a run of words from any of these lines (the companion's lines of the last
        minutes, the persona's examples) nor say these phrases: a backend that can steer its tokens does; the others
        do nothing."""

    def count_tokens(self, text: str) -> int:
        """Tokens `text` takes. Without the model's tokenizer: one per three UTF-8 bytes, rounded up, which is on
        the safe side for English and Korean with common tokenizers."""
        return -(-len(text.encode("utf-8")) // 3)

    def count_prompt(self, messages: list[Message]) -> int:
        """Tokens a chat prompt takes, its template included (an estimate of 8 per message without the template)."""
        return sum(self.count_tokens(m["content"]) + 8 for m in messages)

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the model or connection."""

    @property
    def label(self) -> str:
        return self.name

    @property
    def identity(self) -> dict[str, Any]:
        """What decides this backend's replies, for keying cached results (the model file's hash where known)."""
        return {"label": self.label}


BACKENDS: Registry[type[LLMBackend]] = Registry("LLM backend")


def make_backend(config: LLMConfig) -> LLMBackend:
    """The configured backend, loaded and ready."""
    cls = BACKENDS.get(config.backend)
    return cls.from_config(config)  # type: ignore[attr-defined]
