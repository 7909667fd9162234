"""Korean particles that depend on the word before them (이/가, 을/를, 은/는, 으로/로), for text kibitz writes
around words it did not choose: a player's words in a memory, a value in a benchmark sentence."""

from __future__ import annotations

import re

DIGIT_FINAL = {"0": 21, "1": 8, "2": 0, "3": 16, "4": 0, "5": 0, "6": 1, "7": 8, "8": 8, "9": 0}
"""The final consonant (jongseong index) of each digit read in Sino-Korean (영 일 이 삼 사 오 육 칠 팔 구)."""
RIEUL = 8
_SLOT = re.compile(r"\{(\w+)(?:/([^/{}]+)/([^/{}]+))?\}")


def final_consonant(word: str) -> int:
    """The final consonant of the word's last syllable as a jongseong index (0: it ends in a vowel)."""
    for ch in reversed(word.strip()):
        if "가" <= ch <= "힣":
            return (ord(ch) - 0xAC00) % 28
        if ch in DIGIT_FINAL:
            return DIGIT_FINAL[ch]
        if ch.isalpha():
            return 0
    return 0


def particle(word: str, after_consonant: str, after_vowel: str) -> str:
    """The Korean particle that follows `word`: 이/가, 을/를, 은/는, 이야/야; 으로/로 takes 로 after ㄹ too."""
    final = final_consonant(word)
    if after_consonant == "으로":
        return after_vowel if final in (0, RIEUL) else after_consonant
    return after_consonant if final else after_vowel


def fill(template: str, values: dict[str, str]) -> str:
    """`template` with {name} replaced by values[name] and {name/이/가} by the value and its particle."""

    def slot(m: re.Match[str]) -> str:
        value = values[m.group(1)]
        return value + particle(value, m.group(2), m.group(3)) if m.group(2) else value

    return _SLOT.sub(slot, template)
