from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fake_openai import FakeOpenAI
from kibitz.models import store
from kibitz.models.catalog import MODELS


@pytest.fixture
def fake_server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    """The real SmolLM2-135M test model; CI installs it (KIBITZ_REQUIRE_MODELS=1 turns a skip into a failure)."""
    spec = MODELS.get("smollm2-135m")
    path = store.model_path(spec)
    if not path.is_file():
        message = "SmolLM2 test model missing: run `kibitz models install smollm2-135m`"
        if os.environ.get("KIBITZ_REQUIRE_MODELS"):
            pytest.fail(message)
        pytest.skip(message)
    return path
