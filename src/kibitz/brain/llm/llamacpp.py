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
import time
from collections.abc import Iterator, Sequence
from typing import Any

from kibitz.brain.llm.base import LLMBackend, Message
from kibitz.core.config import LLMConfig
from kibitz.core.errors import ModelError
from kibitz.models.store import resolve

PREFETCH_CHUNK = 16
"""Tokens evaluated between two checks for an incoming event during a prefetch (llama.cpp on the CPU evaluates a
batch of 16 at 36 tokens/s on one thread, of 8 at 22: smaller chunks would stop sooner but cost more)."""


_END = "\ue001"
"""Marks the end of an open last message in the formatted prompt (a private-use character no text has)."""


class LlamaCppBackend(LLMBackend):
    name = "llamacpp"

    def __init__(
        self,
        model: str,
        n_ctx: int = 2048,
        n_threads: int = 1,
        seed: int = 0,
        n_threads_batch: int | None = None,
        answer_threads: int | None = None,
    ) -> None:
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
        self.path = path
        self.seed = seed
        self._sha256: str | None = None
        try:
            # llama.cpp prints its load log on stderr at the C level; keep the terminal clean.
            with contextlib.redirect_stderr(io.StringIO()):
                self.llm: Any = Llama(
                    model_path=str(path),
                    n_ctx=n_ctx,
                    n_threads=n_threads,
                    n_threads_batch=n_threads_batch or n_threads,
                    seed=seed,
                    verbose=False,
                )
        except (ValueError, RuntimeError) as exc:
            raise ModelError(
                f"llama.cpp could not load {path} ({exc}); reinstall it with "
                f"`kibitz models install {model} --force` or pick another model."
            ) from None
        self._threads = (n_threads, n_threads_batch or n_threads)
        self._hurried = (max(n_threads, answer_threads or 0), max(n_threads_batch or n_threads, answer_threads or 0))
        self._hurry_since: float | None = None
        self._lock = threading.Lock()
        self._avoid: set[int] = set()
        """First tokens the next stream may not start with (`avoid_openings`)."""
        self._grams: set[tuple[int, ...]] = set()
        """Token runs the next stream may not copy (`avoid_repeating`)."""
        self._digits, self._latin = self._scan_vocabulary()
        """The tokens that hold a digit (a number's digits are never barred as a repeat), and those that start with a
        Latin letter or digit (`start_in_own_script`): found once, at load, off the path of a line."""
        self._formatter = self._chat_formatter()
        self.context_window = int(self.llm.n_ctx())

    def _chat_formatter(self) -> Any:
        """The same Jinja chat formatter llama-cpp-python builds from the GGUF's template (None if it has none)."""
        from llama_cpp import llama_chat_format

        template = self.llm.metadata.get("tokenizer.chat_template")
        if not template:
            return None
        vocab = self.llm._model
        return llama_chat_format.Jinja2ChatFormatter(
            template=template,
            eos_token=vocab.token_get_text(self.llm.token_eos()),
            bos_token=vocab.token_get_text(self.llm.token_bos()),
        )

    @classmethod
    def from_config(cls, config: LLMConfig) -> LlamaCppBackend:
        return cls(
            config.model,
            n_ctx=config.n_ctx,
            n_threads=config.n_threads,
            seed=config.seed,
            n_threads_batch=config.n_threads_batch,
            answer_threads=config.answer_threads,
        )

    @property
    def label(self) -> str:
        return f"llamacpp:{self.model_name}"

    @property
    def identity(self) -> dict[str, Any]:
        """The model file's sha256 (pinned for a catalogue model, recorded for a pulled one, hashed once for the user's
        own file)."""
        if self._sha256 is None:
            from kibitz.models.store import known_spec, sha256_file

            spec = known_spec(self.model_name)
            self._sha256 = spec.sha256 if spec is not None else sha256_file(self.path)
        return {"label": self.label, "sha256": self._sha256, "n_ctx": self.context_window, "seed": self.seed}

    def hurry(self, on: bool) -> None:
        """llm.answer_threads while on (llama.cpp reads the thread counts at each evaluation)."""
        if self._hurried == self._threads:
            return
        self.llm._ctx.set_n_threads(*(self._hurried if on else self._threads))
        now = time.perf_counter()
        if self._hurry_since is not None:
            self.hurried_s += now - self._hurry_since
        self._hurry_since = now if on else None

    def avoid_openings(self, words: Sequence[str]) -> None:
        """The first token of each word (as a line's start, with and without a leading space) is barred from the next
        stream's first token."""
        ids: set[int] = set()
        for word in words:
            for variant in (word, " " + word, word.capitalize(), " " + word.capitalize()):
                tokens = self.llm.tokenize(variant.encode("utf-8"), add_bos=False, special=False)
                if tokens:
                    ids.add(int(tokens[0]))
        self._avoid = ids

    def _scan_vocabulary(self) -> tuple[set[int], set[int]]:
        """(tokens holding a digit, tokens starting with a Latin letter or digit): one pass over the vocabulary."""
        import re

        latin = re.compile(r"\s*[A-Za-z0-9]")
        digits: set[int] = set()
        starts: set[int] = set()
        for i in range(self.llm.n_vocab()):
            piece = self.llm.detokenize([i]).decode("utf-8", "ignore")
            if any(c.isdigit() for c in piece):
                digits.add(i)
            if latin.match(piece):
                starts.add(i)
        return digits, starts

    def start_in_own_script(self) -> None:
        """Bar every token that starts with a Latin letter or digit from the next stream's first token."""
        self._avoid = self._avoid | self._latin

    def avoid_repeating(self, lines: Sequence[str], phrases: Sequence[str] = ()) -> None:
        """No run of REPEAT_NGRAM tokens from these lines in the next stream, and none of these phrases whole (as the
        model would write them: with and without a leading space, a phrase also capitalised)."""
        grams: set[tuple[int, ...]] = set()
        digits = self._digits
        for line in lines:
            for variant in (line, " " + line):
                tokens = self._tokens(variant)
                runs = (tuple(tokens[i : i + REPEAT_NGRAM]) for i in range(len(tokens) - REPEAT_NGRAM + 1))
                # A number may come again (it is a fact: the score, a count); barring its digits made the model
                # write numbers nobody gave it (kibitz bench lines: "invented" rose from 1 % to 9 %).
                grams.update(run for run in runs if not digits.intersection(run))
        for phrase in phrases:
            capital = phrase[:1].upper() + phrase[1:]
            for variant in {phrase, " " + phrase, capital, " " + capital}:
                tokens = self._tokens(variant)
                if tokens:
                    grams.add(tuple(tokens))
        self._grams = grams

    def _tokens(self, text: str) -> list[int]:
        return [int(t) for t in self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)]

    def count_tokens(self, text: str) -> int:
        """Tokens as this model counts them (its own tokenizer, special tokens as in a prompt)."""
        return len(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def count_prompt(self, messages: list[Message]) -> int:
        if self._formatter is None:
            return super().count_prompt(messages)
        return self.count_tokens(self._formatter(messages=messages).prompt)

    def stream(
        self, messages: list[Message], max_tokens: int, temperature: float, stop: list[str] | None = None
    ) -> Iterator[str]:
        with self._lock:
            tokens: list[int] = []
            if self._formatter is not None:
                prompt = self._formatter(messages=messages).prompt
                tokens = self.llm.tokenize(prompt.encode("utf-8"), special=True)
                self.prompt_new = len(tokens) - _common(self.llm._input_ids[: self.llm.n_tokens], tokens)
            avoid, self._avoid = self._avoid, set()
            grams, self._grams = self._grams, set()
            if grams:  # what this line's own message says, it may say again (the event's cause, its level)
                told = self._tokens(messages[-1]["content"])
                grams -= {tuple(told[i : i + REPEAT_NGRAM]) for i in range(len(told) - REPEAT_NGRAM + 1)}
            processors = [p for p in (_first_token_barred(avoid), _no_repeats(grams)) if p is not None]
            from llama_cpp import LogitsProcessorList

            chunks = self.llm.create_chat_completion(
                messages=messages,
                max_tokens=max_tokens,
                temperature=temperature,
                stop=stop or [],
                stream=True,
                top_p=0.9,
                repeat_penalty=1.1,
                logits_processor=LogitsProcessorList(processors) if processors else None,
            )
            for chunk in chunks:
                piece = chunk["choices"][0]["delta"].get("content")
                if piece:
                    yield piece

    def warm(self, messages: list[Message], abort: threading.Event | None = None, open_end: bool = False) -> None:
        """Evaluate the chat prompt into the KV cache in small chunks, stopping between chunks on `abort`.

        The prompt is formatted and tokenised exactly as create_chat_completion does (same template, same
        tokenizer call), so the next request reuses it as a cached prefix. Chunks keep an event that arrives
        mid-prefetch from waiting for the whole prefix (0.3-1.3 s with one thread) to be evaluated.
        """
        if self._formatter is None:  # a model file without a chat template: warm the plain way
            super().warm(messages, abort, open_end)
            return
        if open_end:  # up to the last message's last word: the template's end of the turn is not known yet
            marked = [*messages[:-1], {"role": messages[-1]["role"], "content": messages[-1]["content"] + _END}]
            prompt = self._formatter(messages=marked).prompt
            prompt = prompt[: prompt.index(_END)] if _END in prompt else prompt
        else:
            prompt = self._formatter(messages=messages).prompt
        tokens = self.llm.tokenize(prompt.encode("utf-8"), special=True)
        with self._lock:
            cached = _common(self.llm._input_ids[: self.llm.n_tokens], tokens)
            self.llm.n_tokens = cached  # eval() drops the KV cache past this point before decoding
            for start in range(cached, len(tokens), PREFETCH_CHUNK):
                if abort is not None and abort.is_set():
                    return
                self.llm.eval(tokens[start : start + PREFETCH_CHUNK])

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.llm.close()


def _first_token_barred(ids: set[int]) -> Any:
    """A logits processor that bars these tokens from the first token generated (only the first); None for none."""
    if not ids:
        return None
    import numpy as np

    barred = np.array(sorted(ids), dtype=np.intc)
    calls = [0]

    def bar(input_ids: Any, scores: Any) -> Any:
        calls[0] += 1
        if calls[0] == 1:
            scores[barred[barred < len(scores)]] = -np.inf
        return scores

    return bar


def _no_repeats(grams: set[tuple[int, ...]]) -> Any:
    """A logits processor that bars any token completing one of these token runs (of any length) from what was
    generated so far (the prompt is not looked at: a line may name what its prompt says); None for none."""
    if not grams:
        return None
    import numpy as np

    following: dict[tuple[int, ...], list[int]] = {}
    for gram in grams:
        following.setdefault(gram[:-1], []).append(gram[-1])
    lengths = sorted({len(g) - 1 for g in grams})
    start = [-1]

    def bar(input_ids: Any, scores: Any) -> Any:
        if start[0] < 0:
            start[0] = len(input_ids)  # the first call sees the prompt only
        made = [int(t) for t in input_ids[start[0] :][-lengths[-1] :]] if lengths[-1] else []
        banned: list[int] = []
        for k in lengths:  # every run of the last k tokens that an n-gram continues
            if k <= len(made):
                banned += following.get(tuple(made[len(made) - k :]) if k else (), [])
        if banned:
            scores[np.array(banned, dtype=np.intc)] = -np.inf
        return scores

    return bar


REPEAT_NGRAM = 4
"""A line may not copy this many tokens in a row (about three words) from the companion's recent lines."""


def _common(have: Any, want: list[int]) -> int:
    """How many tokens two token sequences share from the start."""
    n = 0
    for a, b in zip(have, want, strict=False):
        if a != b:
            break
        n += 1
    return n
