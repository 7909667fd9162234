"""A built-in game's knowledge for the companion: the facts and tips of `games/data/<game>.knowledge.yaml`, each with
its spoiler class, as `Tip` records. A game without such a file has none (kibitz knows it only from what the
player's guides say: `kibitz games guide`)."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import yaml

from kibitz.core.errors import KibitzError
from kibitz.core.knowledge import Tip
from kibitz.core.spoiler import HINT, NONE, SOLUTION

SPOILERS = {"none": NONE, "hint": HINT, "solution": SOLUTION}


def knowledge_file(game: str) -> Any:
    return resources.files("kibitz.games") / "data" / f"{game}.knowledge.yaml"


@cache
def builtin_tips(game: str) -> tuple[Tip, ...]:
    """The game's built-in tips (none for a game without a knowledge file)."""
    path = knowledge_file(game)
    if not path.is_file():
        return ()
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    source = str(data.get("sources", f"{game}.knowledge.yaml"))
    tips = []
    for n, item in enumerate(data.get("tips") or []):
        spoiler = item.get("spoiler", "none")
        if not item.get("text") or spoiler not in SPOILERS:
            raise KibitzError(
                f"{game}.knowledge.yaml: tip {n + 1} needs a text and a spoiler class (none, hint or solution)."
            )
        tips.append(
            Tip(
                text=str(item["text"]).strip(),
                spoiler=SPOILERS[spoiler],
                source=source,
                about=tuple(str(a).lower() for a in item.get("about") or ()),
                levels=tuple(str(lv) for lv in item.get("levels") or ()),
            )
        )
    return tuple(tips)
