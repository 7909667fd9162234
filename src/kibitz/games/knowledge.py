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
    present = {str(level): set(names) for level, names in (data.get("present") or {}).items()}
    phrase = str(data.get("present_phrase", "The enemies in {level}: {names}."))
    tips = [_level_tip(phrase, level, sorted(names), source) for level, names in present.items() if names]
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
                not_in=_without(set(item.get("enemies") or ()), present),
            )
        )
    return tuple(tips)


def _without(enemies: set[str], present: dict[str, set[str]]) -> tuple[str, ...]:
    """The measured levels holding none of these enemies."""
    return tuple(level for level, names in present.items() if enemies and not enemies & names)


def _level_tip(phrase: str, level: str, names: list[str], source: str) -> Tip:
    """What a level holds, as a tip for questions asked there ("what should I watch out for?")."""
    about = ("enemies", "enemy", "watch", "danger", "threat", *(n.lower() for n in names))
    return Tip(phrase.format(level=level, names=", ".join(names)), HINT, source, about, (level,))
