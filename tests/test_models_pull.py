"""`kibitz models pull`: a hub model is fetched with the real huggingface_hub client from a local fake of the hub's
HTTP API (tests/fake_hub.py), checked against the sha256 the hub publishes, recorded, and checked again at load."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fake_hub import FakeHub, Repo
from kibitz.cli.main import app
from kibitz.core.errors import ModelError
from kibitz.models import hub, store
from kibitz.models.hub import HUB_MODELS

NAME = "llama3.2-3b"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def fake_hub(kibitz_home: Path, smollm2_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    """The hub, serving the real SmolLM2 file as the curated model's file (so the pulled model really loads). Online:
    loading a model sets HF_HUB_OFFLINE in the process (the llama.cpp backend), which an earlier test may have done."""
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HOME", str(kibitz_home / "hf"))  # no token or cache of the user's
    model = HUB_MODELS.get(NAME)
    with FakeHub() as server:
        server.repos[model.repo] = Repo(COMMIT, {model.filename: smollm2_path.read_bytes()})
        yield server


def test_a_pulled_model_is_verified_recorded_and_loads(fake_hub: FakeHub) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["models", "pull", NAME, "--endpoint", fake_hub.url])
    assert result.exit_code == 0, result.output
    record = hub.pulled_models()[NAME]
    path = store.resolve(NAME)
    assert record.commit == COMMIT and record.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert path.parent == store.models_dir() and not (store.models_dir() / ".pulling" / NAME).exists()
    assert len(fake_hub.downloads) == 1
    # Pulled again: the hub is asked for the hash, nothing is downloaded; --force downloads it again.
    assert runner.invoke(app, ["models", "pull", NAME, "--endpoint", fake_hub.url]).exit_code == 0
    assert len(fake_hub.downloads) == 1
    assert runner.invoke(app, ["models", "pull", NAME, "--endpoint", fake_hub.url, "--force"]).exit_code == 0
    assert len(fake_hub.downloads) == 2
    listed = runner.invoke(app, ["models", "list"])
    assert NAME in listed.output and COMMIT[:10] in listed.output
    # It loads and writes, by its name.
    from kibitz.brain.llm.llamacpp import LlamaCppBackend

    backend = LlamaCppBackend(NAME, n_ctx=512, n_threads=1)
    assert "".join(backend.stream([{"role": "user", "content": "Say hi."}], max_tokens=4, temperature=0.0))
    assert backend.identity["sha256"] == record.sha256
    backend.close()
    # A file changed after the pull fails its check at load, with the fix.
    with path.open("r+b") as f:
        f.seek(1000)
        f.write(b"\x00\x01\x02\x03")
    store._stamp_path(path).unlink(missing_ok=True)
    with pytest.raises(ModelError, match=f"kibitz models pull {NAME}"):
        store.resolve(NAME)
    assert runner.invoke(app, ["models", "remove", NAME]).exit_code == 0
    assert NAME not in hub.pulled_models() and not path.exists()


def test_a_file_that_does_not_match_the_published_hash_is_not_kept(fake_hub: FakeHub) -> None:
    model = HUB_MODELS.get(NAME)
    fake_hub.repos[model.repo].published[model.filename] = "0" * 64
    with pytest.raises(ModelError, match="does not match the sha256 the hub publishes"):
        hub.pull(NAME, endpoint=fake_hub.url)
    assert not (store.models_dir() / model.filename).exists() and NAME not in hub.pulled_models()
    with pytest.raises(ModelError, match="is not pulled yet"):
        store.resolve(NAME)


def test_a_wrong_revision_a_missing_repo_or_no_hub_is_one_sentence(fake_hub: FakeHub) -> None:
    with pytest.raises(ModelError, match="has no revision 'v9'"):
        hub.pull(NAME, revision="v9", endpoint=fake_hub.url)
    with pytest.raises(ModelError, match="no repository"):
        hub.pull("phi3.5-mini", endpoint=fake_hub.url)
    with pytest.raises(ModelError, match="Could not reach the model hub"):
        hub.pull(NAME, endpoint="http://127.0.0.1:9")
    result = CliRunner().invoke(app, ["models", "pull", "no-such-model", "--endpoint", fake_hub.url])
    assert result.exit_code != 0 and "Unknown hub model" in str(result.exception)
