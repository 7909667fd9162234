"""Cut a line being streamed token by token into sentences, so each can be spoken as soon as it is complete.

The first piece may be cut earlier: at its first comma ("Yes, ...", "Oh no, ..."), and, when it runs long with no
comma, before a word that starts a new clause or phrase ("You can see the flag | from the top of that pipe", the
words in data/clauses.yaml): the player hears the companion start while the model is still writing; later pieces
wait for whole sentences, which sound better. A sentence ends at its full stop at once when the stop follows a word
("pipes." — "1.5" and "e.g." wait for what follows).
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

import yaml

ENDS = re.compile(r"(?<=[.!?…])[\"')\]]*\s+|(?<=[。！？!?])")
"""A sentence ends at . ! ? … followed by space (Latin scripts) or right after 。！？ (CJK, no space)."""
CLAUSE = re.compile(r"(?<=[,;:—、，])\s*")
WORD = re.compile(r"\s(\w+)(?=\W)")
"""A whole word (what follows it has begun: " to" may still become " today")."""
FIRST_CLAUSE_WORDS = 1
"""A first clause this long (in words, or 8 characters in a language written without spaces) is spoken alone: the
answer's first word ("Yes, ...") is heard while the model writes the rest (measured by `kibitz bench voice`: the
first sentence of an answer is often long and comma-free after its first word)."""
FIRST_PHRASE_WORDS = 4
"""A first sentence with no comma is spoken up to a clause word (data/clauses.yaml) once it has this many words."""


@cache
def clause_words(language: str) -> frozenset[str]:
    """The words that start a clause or phrase in `language` (none for a language without a list)."""
    raw = yaml.safe_load((resources.files("kibitz.voice") / "data" / "clauses.yaml").read_text("utf-8")) or {}
    return frozenset(str(w).lower() for w in raw.get(language, []))


class SentenceSplitter:
    def __init__(self, language: str = "en") -> None:
        self._buffer = ""
        self._emitted = 0
        self._clause_words = clause_words(language)
        self.done = False
        """Set by a user that needs nothing more from it."""

    def feed(self, piece: str) -> list[str]:
        """Complete sentences so far (in order); what is left stays for the next piece."""
        self._buffer += piece
        out: list[str] = []
        while True:
            match = ENDS.search(self._buffer)
            cuts = [match.end() if match else None, len(self._buffer) if _stopped_after_word(self._buffer) else None]
            if self._emitted == 0:
                cuts += [self._first_clause(), self._first_phrase()]
            cut = min((c for c in cuts if c is not None), default=None)  # the earliest
            if cut is None:
                break
            sentence, self._buffer = self._buffer[:cut].strip(), self._buffer[cut:]
            if sentence:
                out.append(sentence)
                self._emitted += 1
        return out

    def _first_clause(self) -> int | None:
        for match in CLAUSE.finditer(self._buffer):
            head = self._buffer[: match.start()].strip()
            spaced = " " in head or head.isascii()  # a language written with spaces ("Yes," is one word)
            long_enough = len(head.split()) >= FIRST_CLAUSE_WORDS if spaced else len(head) >= 8
            # A comma after a letter ends a clause at once; after a digit, only a space after it does ("1,000").
            after_word = len(head) >= 2 and head[-2].isalpha()
            spaced_out = match.end() > match.start() or head[-1] in "、，"
            settled = after_word or (spaced_out and match.end() < len(self._buffer))
            if long_enough and settled:
                return match.end()
        return None

    def _first_phrase(self) -> int | None:
        """Before the first clause word that has FIRST_PHRASE_WORDS words before it."""
        if not self._clause_words:
            return None
        for match in WORD.finditer(self._buffer):
            words_before = len(self._buffer[: match.start()].split())
            if match.group(1).lower() in self._clause_words and words_before >= FIRST_PHRASE_WORDS:
                return match.start() + 1
        return None

    def flush(self) -> list[str]:
        """The rest of the line, once it is complete."""
        rest, self._buffer = self._buffer.strip(), ""
        if rest:
            self._emitted += 1
            return [rest]
        return []


def _stopped_after_word(text: str) -> bool:
    """`text` ends with a full stop right after a word of two lowercase letters or more ("pipes.", not "1.", "Mr."
    or "e.g.")."""
    return len(text) >= 3 and text[-1] == "." and text[-2].islower() and text[-3].islower()


def continuing(text: str) -> str:
    """What a voice says for a piece cut before the end of its sentence: the piece with a comma, so it is spoken
    with a continuing intonation rather than as a sentence's end (a piece that ends in punctuation, as it is)."""
    return f"{text}," if text[-1:].isalnum() else text
