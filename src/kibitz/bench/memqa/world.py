"""The data files of the memory benchmark (kibitz/bench/prompts/memory_qa_*.yaml) and template filling."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import Any

import yaml

DIGIT_FINAL = {"0": 21, "1": 8, "2": 0, "3": 16, "4": 0, "5": 0, "6": 1, "7": 8, "8": 8, "9": 0}
"""The final consonant (jongseong index) of each digit read in Sino-Korean (영 일 이 삼 사 오 육 칠 팔 구)."""
RIEUL = 8
_SLOT = re.compile(r"\{(\w+)(?:/([^/{}]+)/([^/{}]+))?\}")


def _load(name: str) -> dict[str, Any]:
    text = (resources.files("kibitz.bench") / "prompts" / name).read_text(encoding="utf-8")
    data: dict[str, Any] = yaml.safe_load(text)
    return data


@cache
def world() -> dict[str, Any]:
    """Games, people, what players say (memory_qa_world.yaml)."""
    return _load("memory_qa_world.yaml")


@cache
def question_data() -> dict[str, Any]:
    """Question templates, preference answer keys, the baseline's history lines and prompt."""
    return _load("memory_qa_questions.yaml")


@cache
def paraphrases() -> dict[str, Any]:
    """Held-out phrasings of the questions per set (memory_qa_paraphrases.yaml: dev, test)."""
    return _load("memory_qa_paraphrases.yaml")


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
