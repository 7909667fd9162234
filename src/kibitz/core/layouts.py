"""Built-in label layouts: the labelled numbers of a family of games' status lines, as data
(`core/data/label_layouts.yaml`): a roguelike's "Dlvl:1 $:0 HP:14(14)", a shooter's numbers above AMMO and HEALTH."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources

import yaml

from kibitz.core.errors import ConfigError


@dataclass(frozen=True, slots=True)
class LabelLayout:
    name: str
    about: str
    labels: dict[str, tuple[str, ...]]
    """field → its labels, in the order they are tried."""


@cache
def label_layouts() -> dict[str, LabelLayout]:
    text = (resources.files("kibitz.core") / "data" / "label_layouts.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text) or {}
    return {
        name: LabelLayout(name, str(spec["about"]), {f: tuple(map(str, v)) for f, v in spec["labels"].items()})
        for name, spec in data.items()
    }


def check_layout(name: str) -> str:
    """The layout's name, or a ConfigError naming the layouts there are."""
    if name not in label_layouts():
        raise ConfigError(f"There is no label layout {name!r}; the built-in layouts are {', '.join(label_layouts())}.")
    return name


def combine_labels(layout: str | None, *labels: Mapping[str, list[str]]) -> dict[str, list[str]]:
    """The labels to read: the layout's, then each mapping in turn (a field named again replaces its labels)."""
    out: dict[str, list[str]] = {}
    if layout is not None:
        out |= {f: list(v) for f, v in label_layouts()[check_layout(layout)].labels.items()}
    for more in labels:
        out |= {f: list(v) for f, v in more.items()}
    return out
