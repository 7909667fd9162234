"""Scoring the memory benchmark: does a memory support a question, does an answer hold an accepted key; the
accepted forms of counts, dates and levels (digits or words, English or Korean)."""

from __future__ import annotations

import calendar
import re
import unicodedata
from collections.abc import Iterable, Sequence
from datetime import date

EN_ONES = (
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
)
EN_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
KO_UNITS = ("", "한", "두", "세", "네", "다섯", "여섯", "일곱", "여덟", "아홉")
"""Native Korean numbers as they stand before a counter (한 번, 두 마리)."""
KO_TENS = ("", "열", "스물", "서른", "마흔", "쉰", "예순", "일흔", "여든", "아흔")


def norm(text: str) -> str:
    """Case- and width-insensitive form (NFKC, casefolded, straight apostrophes)."""
    return unicodedata.normalize("NFKC", text).casefold().replace("\u2019", "'")


def supports(text: str, support: Sequence[str]) -> bool:
    """The memory text contains every support substring."""
    low = norm(text)
    return all(norm(s) in low for s in support)


def _ascii_word(ch: str) -> bool:
    return ch.isascii() and ch.isalnum()


def find(text: str, key: str) -> int:
    """Where `key` first occurs in the normalised `text`, or -1. An ASCII key must start a word, and a key that
    ends in a digit must end the number ("7" is not found in "17" or "70"); Korean keys are plain substrings."""
    k = norm(key).strip()
    if not k:
        return -1
    pattern = re.escape(k)
    if _ascii_word(k[0]):
        pattern = r"(?<![a-z0-9])" + pattern
    if k[-1].isdigit():
        pattern += r"(?![0-9])"
    m = re.search(pattern, text)
    return m.start() if m else -1


ECHO_WORDS = 4
"""An answer's run of this many words or more copied from the question is an echo, not an answer."""


def strip_echo(answer: str, question: str, n: int = ECHO_WORDS) -> str:
    """The answer without what it copies from the question (runs of n or more of its words in a row): "you asked
    if I should talk more or less" answers nothing, and "you died 4 times in level 2-2" is not the count 2."""
    words = [m for m in re.finditer(r"\w+", norm(answer))]
    asked = re.findall(r"\w+", norm(question))
    grams = {tuple(asked[i : i + n]) for i in range(len(asked) - n + 1)}
    copied = [False] * len(words)
    for i in range(len(words) - n + 1):
        if tuple(w.group() for w in words[i : i + n]) in grams:
            copied[i : i + n] = [True] * n
    text = norm(answer)
    for word, echo in sorted(zip(words, copied, strict=True), key=lambda wc: -wc[0].start()):
        if echo:
            text = text[: word.start()] + " " + text[word.end() :]
    return text


def answer_correct(answer: str, accept: Iterable[str], reject: Iterable[str] = (), question: str = "") -> bool:
    """The answer holds an accepted key, and no rejected key comes before the first one ("less, not more"); what
    it copies from the question does not count (see strip_echo)."""
    text = strip_echo(answer, question) if question else norm(answer)
    found = [p for p in (find(text, k) for k in accept) if p >= 0]
    if not found:
        return False
    bad = [p for p in (find(text, k) for k in reject) if p >= 0]
    return not bad or min(found) <= min(bad)


def en_words(n: int) -> list[str]:
    if n < 20:
        return [EN_ONES[n]]
    tens, ones = divmod(n, 10)
    if tens >= len(EN_TENS):
        return []
    if not ones:
        return [EN_TENS[tens]]
    return [f"{EN_TENS[tens]}-{EN_ONES[ones]}", f"{EN_TENS[tens]} {EN_ONES[ones]}"]


def ko_native(n: int) -> str:
    """The native Korean number before a counter: 1 한, 7 일곱, 20 스무, 23 스물세 ('' past 99)."""
    if n == 20:
        return "스무"
    tens, ones = divmod(n, 10)
    return KO_TENS[tens] + KO_UNITS[ones] if tens < len(KO_TENS) else ""


def count_keys(n: int, counter: str = "번") -> list[str]:
    """How an answer may say a count: 7, seven, 일곱 번 (the counter: 번 times, 마리 animals, 살 years)."""
    keys = [str(n), *en_words(n)]
    if n == 1:
        keys += ["once", "a single time"]
    if n == 2:
        keys.append("twice")
    native = ko_native(n)
    if native:
        keys += [f"{native} {counter}", f"{native}{counter}"]
    return keys


def date_keys(day: date) -> list[str]:
    """How an answer may say a date: 2026-03-14, March 14, 14 March, 14th of March, 3/14, 3월 14일."""
    month, short = calendar.month_name[day.month], calendar.month_abbr[day.month]
    suffix = "th" if 11 <= day.day % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day.day % 10, "th")
    nth = f"{day.day}{suffix}"
    keys = [day.isoformat(), f"{day.month:02d}-{day.day:02d}", f"{day.month}/{day.day}"]
    for name in (month, short):
        keys += [f"{name} {day.day}", f"{name} {nth}", f"{day.day} {name}", f"{nth} {name}", f"{nth} of {name}"]
    keys += [f"{day.month}월 {day.day}일", f"{day.month}월{day.day}일"]
    return keys


def level_keys(level: str) -> list[str]:
    """How an answer may name a level: 1-2 (world-stage), E1M3, or a number said as level 5 / 5층 / 레벨 5."""
    if not level.isdigit():
        return [level, level.replace("-", "–"), level.replace("-", " - ")]
    n = int(level)
    keys = [f"{word} {n}" for word in ("level", "lvl", "dlvl", "floor", "depth", "stage", "board", "wall")]
    keys += [f"레벨 {n}", f"{n}레벨", f"{n} 레벨", f"{n}층", f"{n} 층", f"{n}단계", f"{n} 단계", f"{n}번째"]
    keys += [f"level {w}" for w in en_words(n)]
    return keys
