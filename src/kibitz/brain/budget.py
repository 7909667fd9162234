"""Every prompt fits the model's context, whatever the player types or the screen shows.

The context is split as: the persona's fixed system message and the template's own words (measured once per
persona), the reply (max_tokens), a small margin, and the rest shared by the parts that vary, each cut to its
share (prompts/budget.yaml) with the backend's own token count. Shares are fixed rather than passed on from an
unused part, so the state and notes at the head of the prompt are cut the same way for every line and stay the
cached prefix.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources

import yaml

from kibitz.core.errors import ConfigError

CUT = " […]"
"""Marks where a part was cut to fit."""
MIN_PART_TOKENS = 8
"""A part cut below this is left out rather than shown as a stump."""


@cache
def shares() -> dict[str, float]:
    """The share of the free context each varying part may take (they add up to 1)."""
    text = (resources.files("kibitz.brain") / "prompts" / "budget.yaml").read_text(encoding="utf-8")
    data: dict[str, float] = yaml.safe_load(text)["shares"]
    return data


@dataclass(frozen=True, slots=True)
class Budget:
    """How many tokens each part of a prompt may take, and how to cut a text to its part."""

    count: Callable[[str], int]
    limits: dict[str, int]

    @classmethod
    def plan(cls, count: Callable[[str], int], context: int, fixed: int, reply: int, margin: int = 32) -> Budget:
        """Split what `context` leaves after the fixed text, the reply and a margin between the varying parts."""
        free = context - fixed - reply - margin
        if free < 64:
            raise ConfigError(
                f"The model's context ({context} tokens) leaves {max(free, 0)} for the game and the question after "
                f"the persona's instructions ({fixed}) and the reply ({reply}); raise llm.n_ctx, lower "
                "llm.max_tokens or shorten the persona."
            )
        return cls(count, {part: int(free * share) for part, share in shares().items()})

    def cut(self, text: str, part: str) -> str:
        """`text` cut (at a word where it can) to the tokens its part may take."""
        return self.cut_to(text, self.limits[part])

    def cut_to(self, text: str, tokens: int) -> str:
        n = self.count(text)
        if n <= tokens:
            return text
        if tokens < MIN_PART_TOKENS:
            return ""
        keep = len(text)
        while n > tokens and keep > 0:
            keep = int(keep * tokens / n * 0.9)
            head = text[:keep]
            # End on a word boundary when one is near, so no half-word reaches the model.
            space = head.rfind(" ")
            if space > keep * 0.8:
                head = head[:space]
            text_cut = head.rstrip() + CUT
            n = self.count(text_cut)
        return text_cut if keep > 0 else ""

    def cut_all(self, items: Sequence[str], part: str) -> list[str]:
        """As many of `items` as fit their part's tokens, in order; the last one that does not fit is cut."""
        left = self.limits[part]
        kept: list[str] = []
        for item in items:
            n = self.count(item) + 2  # the list's "- " and newline
            if n <= left:
                kept.append(item)
                left -= n
                continue
            if cut := self.cut_to(item, left - 2):
                kept.append(cut)
            break
        return kept
