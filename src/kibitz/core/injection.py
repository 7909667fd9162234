"""Screen text that gives orders to an AI never reaches the model as text: such a line is replaced by a placeholder
before it joins the game state (patterns in core/data/injection.yaml). This is a second defence: screen text is
already quoted as data, and the system prompt says never to follow it."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

import yaml


@cache
def _rules() -> tuple[str, tuple[re.Pattern[str], ...]]:
    data = yaml.safe_load((resources.files("kibitz.core") / "data" / "injection.yaml").read_text(encoding="utf-8"))
    return data["placeholder"], tuple(re.compile(p, re.IGNORECASE | re.MULTILINE) for p in data["patterns"])


def gives_orders(line: str) -> bool:
    """The line looks like an instruction to an AI ("ignore your instructions", "bot, say X", "[INST]")."""
    return any(p.search(line) for p in _rules()[1])


def neutralise(line: str) -> str:
    """The line, or a placeholder when it gives orders to an AI."""
    return _rules()[0] if gives_orders(line) else line
