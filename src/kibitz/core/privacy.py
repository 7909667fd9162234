"""Personal data out: e-mail addresses, phone numbers, street addresses, card and account numbers and passwords are
replaced by a placeholder before anything the player typed or the screen showed is stored or logged.

The kinds are data (core/data/personal_data.yaml). Numbers a game shows (scores, "level 4-1", "12:30") are left
alone: each number kind needs a shape no HUD has or a keyword before it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml


def luhn(digits: str) -> bool:
    """The card-number checksum (ISO/IEC 7812): true for real card numbers, false for most other digit runs."""
    numbers = [int(c) for c in digits if c.isdigit()]
    if not 13 <= len(numbers) <= 19:
        return False
    total = 0
    for i, n in enumerate(reversed(numbers)):
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


CHECKS: dict[str, Callable[[str], bool]] = {"luhn": luhn}


@dataclass(frozen=True, slots=True)
class Kind:
    name: str
    pattern: re.Pattern[str]
    replacement: str
    check: Callable[[str], bool] | None = None

    def sub(self, text: str) -> str:
        def replace(match: re.Match[str]) -> str:
            if self.check is not None and not self.check(match.group(0)):
                return match.group(0)
            if "value" in self.pattern.groupindex and match.group("value") is not None:
                start, end = match.span("value")
                whole = match.start()
                return match.group(0)[: start - whole] + self.replacement + match.group(0)[end - whole :]
            return self.replacement

        return self.pattern.sub(replace, text)


@cache
def kinds() -> tuple[Kind, ...]:
    text = (resources.files("kibitz.core") / "data" / "personal_data.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    return tuple(
        Kind(
            k["name"],
            re.compile(k["pattern"].strip(), re.IGNORECASE | re.VERBOSE),
            k["replacement"],
            CHECKS[k["check"]] if k.get("check") else None,
        )
        for k in data["kinds"]
    )


def scrub(text: str) -> str:
    """`text` with every piece of personal data replaced by a placeholder ("[email]", "[phone number]"...)."""
    if not text:
        return text
    for kind in kinds():
        text = kind.sub(text)
    return text


def scrub_json(value: Any) -> Any:
    """Every string inside a JSON-like value scrubbed (dict keys stay as they are)."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: scrub_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub_json(v) for v in value]
    return value
