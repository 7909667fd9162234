"""The data files of the memory benchmark (kibitz/bench/prompts/memory_qa_*.yaml); templates are filled with
kibitz.core.korean.fill (Korean particles after the value)."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import yaml

from kibitz.core.korean import fill, particle

__all__ = ["fill", "paraphrases", "particle", "question_data", "world"]


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
