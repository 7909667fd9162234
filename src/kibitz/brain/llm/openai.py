"""Any OpenAI-compatible server (vLLM, SGLang, llama.cpp server, LM Studio, Ollama, cloud), streamed over SSE."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import httpx

from kibitz.brain.llm.base import LLMBackend, Message
from kibitz.core.config import LLMConfig
from kibitz.core.errors import BackendError


class OpenAIBackend(LLMBackend):
    name = "openai"
    concurrent = True

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout_s: float = 30.0,
        seed: int | None = None,
        context_window: int = 2048,
    ) -> None:
        self.context_window = context_window
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.seed = seed
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(headers=headers, timeout=httpx.Timeout(timeout_s, connect=min(5.0, timeout_s)))

    @classmethod
    def from_config(cls, config: LLMConfig) -> OpenAIBackend:
        return cls(
            config.base_url,
            config.model,
            os.environ.get(config.api_key_env),
            config.timeout_s,
            config.seed,
            config.n_ctx,
        )

    @property
    def label(self) -> str:
        return f"openai:{self.model}@{self.base_url}"

    @property
    def identity(self) -> dict[str, Any]:
        """A server's model is known by its id only (its weights are the server's)."""
        return {"label": self.label, "seed": self.seed, "n_ctx": self.context_window}

    def _payload(
        self, messages: list[Message], max_tokens: int, temperature: float, stop: list[str] | None
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "stream": True,
        }
        if stop:
            payload["stop"] = stop
        if self.seed is not None:
            payload["seed"] = self.seed
        return payload

    def stream(
        self, messages: list[Message], max_tokens: int, temperature: float, stop: list[str] | None = None
    ) -> Iterator[str]:
        url = f"{self.base_url}/chat/completions"
        try:
            with self.client.stream("POST", url, json=self._payload(messages, max_tokens, temperature, stop)) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    raise BackendError(
                        f"The model server at {self.base_url} answered HTTP {resp.status_code} "
                        f"({resp.text[:200].strip()}); check --model and the API key."
                    )
                for line in resp.iter_lines():
                    piece = _sse_piece(line)
                    if piece:
                        yield piece
        except httpx.ConnectError:
            raise BackendError(
                f"Cannot reach the model server at {self.base_url}; start it or fix --base-url."
            ) from None
        except httpx.TimeoutException:
            raise BackendError(
                f"The model server at {self.base_url} timed out; check it is running and not "
                "overloaded, or raise llm.timeout_s."
            ) from None
        except httpx.HTTPError as exc:
            raise BackendError(
                f"The model server at {self.base_url} failed mid-reply ({exc.__class__.__name__}); "
                "check the server's log."
            ) from None

    def close(self) -> None:
        self.client.close()


def _sse_piece(line: str) -> str | None:
    """The content delta in one SSE line, "" for keep-alives and [DONE], None for non-data lines."""
    if not line.startswith("data:"):
        return None
    data = line[5:].strip()
    if data == "[DONE]" or not data:
        return ""
    try:
        chunk = json.loads(data)
        choices = chunk.get("choices") or [{}]
        content = (choices[0].get("delta") or {}).get("content")
    except (ValueError, AttributeError, IndexError, TypeError):
        raise BackendError("The model server sent a malformed stream chunk; is it really OpenAI-compatible?") from None
    return content if isinstance(content, str) else ""
