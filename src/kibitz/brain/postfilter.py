"""Cleans a model's line as it streams: no role prefixes, no quotes or stage directions, bounded length."""

from __future__ import annotations

import re

_PREFIX = re.compile(r"^\s*(?:[A-Za-z가-힣]{1,20}\s*:\s*)")
_STAGE = re.compile(r"\*[^*]{0,60}\*|\([^)]{0,40}\)")
_SENTENCE_END = re.compile(r"[.!?。！？…]+[\"')\]]*(\s|$)")
_AI_PHRASES = re.compile(r"\bas an ai\b[^.!?]*[.!?]?", re.IGNORECASE)


def clean_line(text: str, persona_name: str, max_sentences: int) -> str:
    """Final tidy of a complete line."""
    text = text.strip()
    if text.lower().startswith(persona_name.lower() + ":"):
        text = text[len(persona_name) + 1 :]
    text = _PREFIX.sub("", text, count=1) if text[:12].count(":") == 1 and " " not in text.split(":")[0] else text
    text = _STAGE.sub("", _AI_PHRASES.sub("", text))
    text = text.strip().strip('"“”').strip()
    text = re.sub(r"\s+", " ", text)
    return truncate_sentences(text, max_sentences)


def truncate_sentences(text: str, max_sentences: int) -> str:
    """Keep the first max_sentences sentences."""
    for count, match in enumerate(_SENTENCE_END.finditer(text), start=1):
        if count >= max_sentences:
            return text[: match.end()].strip()
    return text.strip()


def sentence_count(text: str) -> int:
    return len(_SENTENCE_END.findall(text))
