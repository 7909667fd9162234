"""Screen text that gives orders to an AI never reaches the model as text: such a line is replaced by a placeholder
before it joins the game state (patterns in core/data/injection.yaml). This is a second defence: screen text is
already quoted as data, and the system prompt says never to follow it."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache
from importlib import resources

import yaml


@cache
def _rules() -> tuple[str, tuple[re.Pattern[str], ...]]:
    data = yaml.safe_load((resources.files("kibitz.core") / "data" / "injection.yaml").read_text(encoding="utf-8"))
    return data["placeholder"], tuple(re.compile(p, re.IGNORECASE | re.MULTILINE) for p in data["patterns"])


_AL = re.compile(r"\bAl\b")
"""OCR reads a capital I as a lower-case l: "Al, say..." is "AI, say..."."""
_ENDS = re.compile(r"[.!?。！？]['\")\]]*\s*$")


def gives_orders(line: str) -> bool:
    """The line looks like an instruction to an AI ("ignore your instructions", "bot, say X", "[INST]")."""
    line = _AL.sub("AI", line)
    return any(p.search(line) for p in _rules()[1])


def neutralise(line: str) -> str:
    """The line, or a placeholder when it gives orders to an AI."""
    return _rules()[0] if gives_orders(line) else line


def neutralise_lines(lines: Sequence[str]) -> list[str]:
    """Screen text lines with every line of an order to an AI replaced by one placeholder. A message on screen
    spans lines (OCR reads a wrapped sign line by line), so a line is left out with its neighbour when the two read
    together give orders, and the line after an order that stops mid-sentence is its continuation."""
    flagged = [gives_orders(line) for line in lines]
    out = list(flagged)
    for i in range(len(lines) - 1):
        continued = flagged[i] and not _ENDS.search(lines[i])
        together = not flagged[i] and not flagged[i + 1] and gives_orders(f"{lines[i]} {lines[i + 1]}")
        if continued or together:
            out[i] = out[i + 1] = True
    placeholder = _rules()[0]
    kept: list[str] = []
    for line, drop in zip(lines, out, strict=True):
        if not drop:
            kept.append(line)
        elif not kept or kept[-1] != placeholder:
            kept.append(placeholder)
    return kept
