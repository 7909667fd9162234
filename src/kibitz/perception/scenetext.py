"""The scene a screen's text names: "GAME OVER", "PAUSED", "PRESS START", "NOW LOADING" (English and Korean).

A title card says what the screen is better than its picture does, in any game: the words are data
(`core/data/scene_words.yaml`). A line names a scene only when it holds one of the phrases as whole words and is
short (at most `MAX_WORDS` words): a banner, not a sentence in a dialogue ("I paused for a second") or a help bar
("P: pause  M: map  Esc: menu").
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache
from importlib import resources

import yaml

MAX_WORDS = 4


@cache
def _phrases() -> tuple[tuple[str, tuple[re.Pattern[str], ...]], ...]:
    text = resources.files("kibitz.core").joinpath("data/scene_words.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    return tuple((scene, tuple(_pattern(p) for p in phrases)) for scene, phrases in data.items())


def _pattern(phrase: str) -> re.Pattern[str]:
    """A phrase as whole words; a Korean one may take a particle or an ending after it ("사망했습니다")."""
    korean = any("\uac00" <= ch <= "\ud7a3" for ch in phrase)
    return re.compile(r"(?<!\w)" + re.escape(phrase.lower()) + ("" if korean else r"(?!\w)"))


def scene_in_text(lines: Iterable[str]) -> str | None:
    """The scene the first matching short line names, in the order of the data file; None when none does."""
    short = [" ".join(line.lower().split()) for line in lines if 0 < len(line.split()) <= MAX_WORDS]
    for scene, patterns in _phrases():
        if any(p.search(line) for line in short for p in patterns):
            return scene
    return None
