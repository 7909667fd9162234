"""Text helpers shared by the brain (cleaning a line) and memory (reading what the player said)."""

from __future__ import annotations

import re
import unicodedata

SENTENCE_END = re.compile(r"[.!?。！？…]+[\"')\]]*(?=\s|$)")
MIN_SENTENCE_WORDS = 3
"""A sentence counts only from this many words on: "Oh no!" does not use up a sentence budget."""


def sentence_ends(text: str) -> list[int]:
    """Offsets just past each sentence that has at least MIN_SENTENCE_WORDS words since the last counted end."""
    ends: list[int] = []
    start = 0
    for match in SENTENCE_END.finditer(text):
        if len(text[start : match.end()].split()) >= MIN_SENTENCE_WORDS:
            ends.append(match.end())
            start = match.end()
    return ends


def bare(text: str) -> str:
    """Lower case, no punctuation, single spaces: how two transcripts of the same words are compared."""
    kept = "".join(c if not unicodedata.category(c).startswith("P") else " " for c in text.lower())
    return " ".join(kept.split())
