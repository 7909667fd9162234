"""One generic registry: names → implementations, with lazy "module:object" entries.

Every stage (sources, games, detectors, LLM backends, personas) is chosen by name through a Registry,
never through an if/elif chain. Entries may be registered eagerly (a decorator) or lazily as an import
path so optional dependencies are only imported when that entry is used.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from kibitz.core.errors import UnknownNameError

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Entry(Generic[T]):
    name: str
    target: T | str
    """The object itself, or a lazy "package.module:attribute" path."""
    help: str


class Registry(Generic[T]):
    """A named collection of implementations of one kind of thing."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, target: T | str, help: str = "") -> None:
        """Add an implementation; target may be a lazy "module:attribute" string."""
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = Entry(name, target, help)

    def decorator(self, name: str, help: str = "") -> Callable[[T], T]:
        """Register the decorated object under name."""

        def wrap(obj: T) -> T:
            self.register(name, obj, help)
            return obj

        return wrap

    def get(self, name: str) -> T:
        """The implementation called name, importing it on first use; a clear error lists the known names."""
        entry = self._entries.get(name)
        if entry is None:
            known = ", ".join(sorted(self._entries)) or "none"
            raise UnknownNameError(f"Unknown {self.kind} {name!r}; known {self.kind}s: {known}.")
        if isinstance(entry.target, str):
            module_name, _, attr = entry.target.partition(":")
            module = importlib.import_module(module_name)
            obj: T = getattr(module, attr)
            self._entries[name] = Entry(name, obj, entry.help)
            return obj
        return entry.target

    def help(self, name: str) -> str:
        return self._entries[name].help

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
