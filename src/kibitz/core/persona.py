"""Personas are YAML files: name, style of speech, language, verbosity and spoiler tolerance. A value type shared
by the brain (which talks as one) and memory (where the player's profile adjusts one)."""

from __future__ import annotations

from enum import StrEnum
from importlib import resources
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from kibitz.core.errors import ConfigError, UnknownNameError
from kibitz.core.events import event_types


class Verbosity(StrEnum):
    SHORT = "short"
    NORMAL = "normal"
    CHATTY = "chatty"


class SpoilerTolerance(StrEnum):
    NONE = "none"
    HINTS = "hints"
    FULL = "full"


MAX_SENTENCES = {Verbosity.SHORT: 1, Verbosity.NORMAL: 2, Verbosity.CHATTY: 3}
MAX_WORDS = {Verbosity.SHORT: 20, Verbosity.NORMAL: 35, Verbosity.CHATTY: 60}
LANGUAGE_NAMES = {
    "en": "English",
    "ko": "Korean",
    "ja": "Japanese",
    "fr": "French",
    "de": "German",
    "es": "Spanish",
}


class PersonaVoice(BaseModel):
    """How the persona sounds when it speaks aloud."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = None
    """A voice from `kibitz voice voices`; None: the default voice of the persona's language."""
    speed: float = Field(1.0, ge=0.5, le=2.0)


class Persona(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str
    style: str
    language: str = "en"
    verbosity: Verbosity = Verbosity.SHORT
    spoiler_tolerance: SpoilerTolerance = SpoilerTolerance.HINTS
    examples: dict[str, list[str]] = Field(default_factory=dict)
    voice: PersonaVoice = Field(default_factory=PersonaVoice)

    @field_validator("examples")
    @classmethod
    def _known_events(cls, examples: dict[str, list[str]]) -> dict[str, list[str]]:
        unknown = sorted(set(examples) - set(event_types()))
        if unknown:
            raise ValueError(f"examples for unknown event types {unknown}; use {', '.join(event_types())}")
        return examples

    @property
    def max_sentences(self) -> int:
        return MAX_SENTENCES[self.verbosity]

    @property
    def max_words(self) -> int:
        return MAX_WORDS[self.verbosity]

    @property
    def language_name(self) -> str:
        return LANGUAGE_NAMES.get(self.language, self.language)


def builtin_personas() -> list[str]:
    """Names of the personas shipped with kibitz."""
    folder = resources.files("kibitz.core") / "personas"
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_persona(name_or_path: str) -> Persona:
    """A built-in persona by name, or a persona YAML file by path."""
    path = Path(name_or_path).expanduser()
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise ConfigError(f"Persona file {path} does not exist; check the path given to --persona.")
        text, origin = path.read_text(encoding="utf-8"), str(path)
    else:
        if name_or_path not in builtin_personas():
            known = ", ".join(builtin_personas())
            raise UnknownNameError(f"Unknown persona {name_or_path!r}; built-in personas: {known} (or a .yaml path).")
        text = (resources.files("kibitz.core") / "personas" / f"{name_or_path}.yaml").read_text(encoding="utf-8")
        origin = f"persona {name_or_path}"
    try:
        return Persona.model_validate(yaml.safe_load(text))
    except (ValidationError, yaml.YAMLError) as exc:
        first = exc.errors()[0] if isinstance(exc, ValidationError) else {"loc": ("file",), "msg": "not valid YAML"}
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"Persona {origin} is invalid at {where!r}: {first['msg']}.") from None
