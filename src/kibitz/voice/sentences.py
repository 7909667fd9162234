"""Cut a line being streamed token by token into sentences, so each can be spoken as soon as it is complete.

The first piece may be cut earlier, at its first comma ("Yes, ...", "Oh no, ..."): the player hears the companion
start while the model is still writing; later pieces wait for whole sentences, which sound better.
"""

from __future__ import annotations

import re

ENDS = re.compile(r"(?<=[.!?…])[\"')\]]*\s+|(?<=[。！？!?])")
"""A sentence ends at . ! ? … followed by space (Latin scripts) or right after 。！？ (CJK, no space)."""
CLAUSE = re.compile(r"(?<=[,;:—、，])\s*")
FIRST_CLAUSE_WORDS = 1
"""A first clause this long (in words, or 8 characters in a language written without spaces) is spoken alone: the
answer's first word ("Yes, ...") is heard while the model writes the rest (measured by `kibitz bench voice`: the
first sentence of an answer is often long and comma-free after its first word)."""


class SentenceSplitter:
    def __init__(self) -> None:
        self._buffer = ""
        self._emitted = 0
        self.done = False
        """Set by a user that needs nothing more from it."""

    def feed(self, piece: str) -> list[str]:
        """Complete sentences so far (in order); what is left stays for the next piece."""
        self._buffer += piece
        out: list[str] = []
        while True:
            match = ENDS.search(self._buffer)
            cut = match.end() if match else None
            if cut is None and self._emitted == 0:
                cut = self._first_clause()
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

    def flush(self) -> list[str]:
        """The rest of the line, once it is complete."""
        rest, self._buffer = self._buffer.strip(), ""
        if rest:
            self._emitted += 1
            return [rest]
        return []
