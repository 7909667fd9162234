"""The embedded backend: a verified GGUF model in-process through llama-cpp-python.

llama-cpp-python keeps the KV cache of the previous prompt and only evaluates the part of a new prompt
after the longest common prefix, so kibitz keeps the system prompt fixed and puts the changing game state
last. Threads: both n_threads and n_threads_batch are set, because in 0.3.36 n_threads_batch defaults to
every core and would starve the game during prompt processing.
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
from collections.abc import Iterator
from typing import Any

from kibitz.brain.llm.base import LLMBackend, Message
from kibitz.core.config import LLMConfig
from kibitz.core.errors import ModelError
from kibitz.models.store import resolve


class LlamaCppBackend(LLMBackend):
    name = "llamacpp"

    def __init__(self, model: str, n_ctx: int = 2048, n_threads: int = 1, seed: int = 0) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            from llama_cpp import Llama
        except ImportError:
            raise ModelError(
                "The embedded LLM needs llama-cpp-python: run `bash scripts/install.sh` "
                "(or pip install llama-cpp-python==0.3.36)."
            ) from None
        path = resolve(model)
        self.model_name = model
        try:
            # llama.cpp prints its load log on stderr at the C level; keep the terminal clean.
            with contextlib.redirect_stderr(io.StringIO()):
                self.llm: Any = Llama(
                    model_path=str(path),
                    n_ctx=n_ctx,
                    n_threads=n_threads,
                    n_threads_batch=n_threads,
                    seed=seed,
                    verbose=False,
                )
        except (ValueError, RuntimeError) as exc:
            raise ModelError(
                f"llama.cpp could not load {path} ({exc}); reinstall it with "
                f"`kibitz models install {model} --force` or pick another model."
            ) from None
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, config: LLMConfig) -> LlamaCppBackend:
        return cls(config.model, n_ctx=config.n_ctx, n_threads=config.n_threads, seed=config.seed)

    @property
    def label(self) -> str:
        return f"llamacpp:{self.model_name}"

    def stream(
        self, messages: list[Message], max_tokens: int, temperature: float, stop: list[str] | None = None
    ) -> Iterator[str]:
        with self._lock:
            chunks = self.llm.create_chat_completion(
                messages=messages,
                max_tokens=max_tokens,
                temperature=temperature,
                stop=stop or [],
                stream=True,
                top_p=0.9,
                repeat_penalty=1.1,
            )
            for chunk in chunks:
                piece = chunk["choices"][0]["delta"].get("content")
                if piece:
                    yield piece

    def warm(self, messages: list[Message]) -> None:
        for _ in self.stream(messages, max_tokens=1, temperature=0.0):
            pass

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.llm.close()
