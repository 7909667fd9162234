from pathlib import Path

import pytest

from kibitz.core.config import load_config
from kibitz.core.errors import ConfigError


def test_defaults_load() -> None:
    cfg = load_config(None)
    assert cfg.llm.backend == "llamacpp" and cfg.llm.n_threads == 1
    assert cfg.source.kind == "emulator"


def test_unknown_key_is_rejected_with_valid_keys(tmp_path: Path) -> None:
    path = tmp_path / "k.yaml"
    path.write_text("llm:\n  modle: foo\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    msg = info.value.message
    assert "llm.modle" in msg and "model" in msg and str(path) in msg
    assert "\n" not in msg


def test_unknown_top_level_key(tmp_path: Path) -> None:
    path = tmp_path / "k.yaml"
    path.write_text("gmae: smb\n")
    with pytest.raises(ConfigError, match="gmae"):
        load_config(path)


def test_bad_value_and_bad_yaml(tmp_path: Path) -> None:
    path = tmp_path / "k.yaml"
    path.write_text("source:\n  fps: -3\n")
    with pytest.raises(ConfigError, match=r"source\.fps"):
        load_config(path)
    path.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(path)
    path.write_text("llm: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")


def test_overrides_apply_over_file(tmp_path: Path) -> None:
    path = tmp_path / "k.yaml"
    path.write_text("llm:\n  backend: openai\n  model: a\n")
    cfg = load_config(path, {"llm.model": "b", "source.fps": 30, "game": None})
    assert cfg.llm.backend == "openai" and cfg.llm.model == "b" and cfg.source.fps == 30


def test_example_config_loads() -> None:
    cfg = load_config(Path(__file__).parent.parent / "examples" / "kibitz.yaml")
    assert cfg.game == "smb" and cfg.policy.type_cooldown_s["stall"] == 30
