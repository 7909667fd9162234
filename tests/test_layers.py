"""Dependencies point one way: core imports no other stage, memory never imports the brain."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).parents[1] / "src" / "kibitz"
RULES = {
    "core": (
        "kibitz.brain",
        "kibitz.memory",
        "kibitz.perception",
        "kibitz.state",
        "kibitz.sources",
        "kibitz.bench",
        "kibitz.server",
    ),
    "memory": ("kibitz.brain", "kibitz.bench", "kibitz.session", "kibitz.server"),
    # The server drives the same session code as `kibitz watch`; nothing in the pipeline depends on it.
    "session.py": ("kibitz.server", "kibitz.cli", "kibitz.bench"),
}


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize("package", sorted(RULES))
def test_a_package_does_not_import_what_depends_on_it(package: str) -> None:
    files = [SRC / package] if package.endswith(".py") else sorted((SRC / package).rglob("*.py"))
    assert files
    bad = {
        f"{path.relative_to(SRC)} imports {name}"
        for path in files
        for name in imports(path)
        if any(name == banned or name.startswith(banned + ".") for banned in RULES[package])
    }
    assert not bad, sorted(bad)


def test_games_remove_refuses_a_name_that_is_a_path(kibitz_home: Path) -> None:
    from typer.testing import CliRunner

    from kibitz.cli.main import app
    from kibitz.perception.assets import prototype_path

    victim = kibitz_home / "precious.npz"  # where "../../precious" would lead from the prototypes folder
    victim.write_bytes(b"keep me")
    assert prototype_path("../../precious").resolve() == victim.resolve()
    for name in ("../../precious", "/etc/passwd", "a/b", "..", ""):
        result = CliRunner().invoke(app, ["games", "remove", name])
        assert result.exit_code != 0 and "letters, digits" in str(result.exception), (name, result.exception)
    assert victim.read_bytes() == b"keep me"
