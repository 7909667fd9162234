import pytest

from kibitz.brain.llm import BACKENDS
from kibitz.core.errors import UnknownNameError
from kibitz.core.registry import Registry
from kibitz.games import GAMES, get_game
from kibitz.sources import SOURCES


def test_unknown_name_lists_known_names() -> None:
    with pytest.raises(UnknownNameError) as info:
        get_game("zelda-99")
    assert "zelda-99" in info.value.message and "smb" in info.value.message and "breakout" in info.value.message


def test_lazy_entries_resolve() -> None:
    reg: Registry[object] = Registry("thing")
    reg.register("path", "pathlib:Path")
    from pathlib import Path

    assert reg.get("path") is Path
    with pytest.raises(ValueError):
        reg.register("path", "os:path")


def test_builtin_registries_have_required_entries() -> None:
    assert {"smb", "breakout", "space_invaders"} <= set(GAMES.names())
    assert {"emulator", "screen", "video", "images"} <= set(SOURCES.names())
    assert {"llamacpp", "openai"} <= set(BACKENDS.names())
