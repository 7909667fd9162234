"""Cleans a model's line as it streams: no role prefixes, quotes or stage directions, bounded length.

Length is counted in sentences that carry content: an interjection such as "Oh no!" (under three words)
does not use up the persona's sentence budget, so "Oh no! You were so close." stays whole.
"""

from __future__ import annotations

import re

from kibitz.core.text import SENTENCE_END, sentence_ends

_STAGE = re.compile(r"\*[^*]{0,60}\*|\([^)]{0,40}\)")
_AI_PHRASES = re.compile(r"\bas an ai\b[^.!?]*[.!?]?", re.IGNORECASE)
_ROLE_PREFIX = re.compile(r"^\s*([^\s:]{1,20})\s*:\s+")


def _strip_prefix(text: str, persona_name: str) -> str:
    match = _ROLE_PREFIX.match(text)
    if match and match.group(1).lower() in {persona_name.lower(), "assistant", "companion", "you", "me"}:
        return text[match.end() :]
    return text


def truncate(text: str, max_sentences: int, max_words: int) -> str:
    """Keep at most max_sentences content sentences and about max_words words, ending on a sentence if possible."""
    ends = sentence_ends(text)
    if len(ends) >= max_sentences:
        text = text[: ends[max_sentences - 1]]
    words = text.split()
    if len(words) > max_words:
        head = " ".join(words[:max_words])
        last = max((m.end() for m in SENTENCE_END.finditer(head)), default=0)
        text = head[:last] if last else head  # a whole sentence beats a phrase cut mid-way
    return text.strip()


def line_complete(text: str, max_sentences: int, max_words: int) -> bool:
    """True once the raw stream already holds a full line (generation can stop)."""
    return len(sentence_ends(text)) >= max_sentences or len(text.split()) > max_words


def clean_line(text: str, persona_name: str, max_sentences: int, max_words: int = 60) -> str:
    """Tidy a (partial or complete) line: role prefix, stage directions, quotes, whitespace, length."""
    text = _strip_prefix(text.strip(), persona_name)
    text = _STAGE.sub("", _AI_PHRASES.sub("", text))
    text = re.sub(r"\s+", " ", text).strip().strip("\"“”'").strip()
    return truncate(text, max_sentences, max_words)
