"""Larger chat models a player with internet can pull from the Hugging Face Hub (`kibitz models pull NAME`), beside
the embedded ones that install offline from pinned packages (kibitz.models.catalog).

A pull asks the hub for the repository's commit and the sha256 it publishes for the file (its Git LFS pointer),
downloads the file at that commit with huggingface_hub, checks the file's own sha256 against it, and only then moves
it into the models folder and records what was pulled (`pulled.json`: repository, file, commit, sha256, size). From
then on the file is checked against that record whenever it is loaded, as the embedded models are against their
pinned hashes. `--revision` pins a commit. Nothing here runs unless a player asks for it: the offline default stays
as it is. `HF_ENDPOINT` (or `--endpoint`) points it at a mirror.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from kibitz.core.errors import ModelError
from kibitz.core.registry import Registry

PULL_HINT = "pip install huggingface_hub==2.5.0 (or kibitz[pull])"


@dataclass(frozen=True, slots=True)
class HubModel:
    name: str
    repo: str
    filename: str
    role: str
    licence: str
    """The licence the model's authors publish it under (read it before you use the model)."""
    size_gb: float
    """About how much it downloads (and needs on disk), for the listing."""


@dataclass(frozen=True, slots=True)
class Pulled:
    """What a pull fetched and verified (a record in pulled.json)."""

    name: str
    repo: str
    filename: str
    commit: str
    sha256: str
    size: int
    pulled: float


HUB_MODELS: Registry[HubModel] = Registry("hub model")
for _model in (
    HubModel(
        "llama3.2-3b",
        "bartowski/Llama-3.2-3B-Instruct-GGUF",
        "Llama-3.2-3B-Instruct-Q4_K_M.gguf",
        "3B chat model, Q4_K_M",
        "Llama 3.2 Community License",
        2.0,
    ),
    HubModel(
        "phi3.5-mini",
        "bartowski/Phi-3.5-mini-instruct-GGUF",
        "Phi-3.5-mini-instruct-Q4_K_M.gguf",
        "3.8B chat model, Q4_K_M",
        "MIT",
        2.4,
    ),
    HubModel(
        "gemma3-4b",
        "bartowski/google_gemma-3-4b-it-GGUF",
        "google_gemma-3-4b-it-Q4_K_M.gguf",
        "4B chat model, Q4_K_M",
        "Gemma Terms of Use",
        2.5,
    ),
    HubModel(
        "qwen2.5-3b",
        "bartowski/Qwen2.5-3B-Instruct-GGUF",
        "Qwen2.5-3B-Instruct-Q4_K_M.gguf",
        "3B chat model, Q4_K_M (English and Korean)",
        "Qwen Research License",
        1.9,
    ),
):
    HUB_MODELS.register(_model.name, _model, f"{_model.role} from {_model.repo}")


def pulled_path() -> Path:
    from kibitz.models.store import models_dir

    return models_dir() / "pulled.json"


def pulled_models() -> dict[str, Pulled]:
    """What was pulled here, by name (an unreadable record is an error saying how to fix it)."""
    path = pulled_path()
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {name: Pulled(**record) for name, record in data.items()}
    except (ValueError, TypeError) as exc:
        raise ModelError(f"{path} is damaged ({exc}); delete it and pull the models again.") from None


def _record(pulled: Pulled | None, name: str) -> None:
    """Add or remove one record, written atomically (a killed process leaves the old file or the new one)."""
    records = {n: asdict(p) for n, p in pulled_models().items()}
    if pulled is None:
        records.pop(name, None)
    else:
        records[name] = asdict(pulled)
    path = pulled_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(records, indent=2, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


def pulled_file(record: Pulled) -> Path:
    from kibitz.models.store import models_dir

    return models_dir() / record.filename


def _hub() -> Any:
    try:
        import huggingface_hub
        from huggingface_hub import constants
    except ImportError:
        raise ModelError(f"Pulling models needs huggingface_hub: {PULL_HINT}.") from None
    if constants.is_offline_mode():
        raise ModelError("HF_HUB_OFFLINE is set, so the hub cannot be reached: unset it to pull a model.")
    return huggingface_hub


def published(model: HubModel, revision: str | None, endpoint: str | None) -> tuple[str, str, int]:
    """(commit, sha256, size) the hub publishes for the model's file at `revision` (default: the main branch)."""
    hub = _hub()
    api = hub.HfApi(endpoint=endpoint)
    try:
        info = api.model_info(model.repo, revision=revision, files_metadata=True)
    except hub.errors.RepositoryNotFoundError:
        raise ModelError(f"The hub has no repository {model.repo} (or it needs a login).") from None
    except hub.errors.RevisionNotFoundError:
        raise ModelError(f"{model.repo} has no revision {revision!r}.") from None
    except Exception as exc:  # network, TLS, proxy: one sentence, with the fix
        reason = _reason(exc)
        raise ModelError(f"Could not reach the model hub ({reason}); check the connection and try again.") from None
    for sibling in info.siblings or []:
        if sibling.rfilename == model.filename:
            lfs = sibling.lfs
            if lfs is None or not getattr(lfs, "sha256", None):
                raise ModelError(f"The hub publishes no sha256 for {model.filename}; kibitz loads no file unchecked.")
            return str(info.sha), str(lfs.sha256), int(lfs.size)
    raise ModelError(f"{model.repo} has no file {model.filename} at {revision or 'main'}.")


def pull(
    name: str,
    revision: str | None = None,
    endpoint: str | None = None,
    progress: Callable[[int], None] | None = None,
    force: bool = False,
) -> tuple[Pulled, Path]:
    """Fetch and verify one hub model (already pulled at that hash, of the right size, and not `force`: nothing is
    downloaded)."""
    from kibitz.models.store import models_dir, sha256_file

    model = HUB_MODELS.get(name)
    commit, sha256, size = published(model, revision, endpoint)
    target = models_dir() / model.filename
    before = pulled_models().get(name)
    same = before is not None and before.sha256 == sha256
    if same and not force and target.is_file() and target.stat().st_size == size:
        assert before is not None
        return before, target
    staging = models_dir() / ".pulling" / name
    staging.mkdir(parents=True, exist_ok=True)
    hub = _hub()
    try:
        fetched = Path(
            hub.hf_hub_download(model.repo, model.filename, revision=commit, local_dir=staging, endpoint=endpoint)
        )
    except Exception as exc:
        raise ModelError(
            f"Downloading {model.filename} failed ({_reason(exc)}); run the same command again to resume."
        ) from None
    actual = sha256_file(fetched, progress)
    if actual != sha256:
        fetched.unlink(missing_ok=True)
        raise ModelError(
            f"{model.filename} does not match the sha256 the hub publishes for it (got {actual[:12]}…, expected "
            f"{sha256[:12]}…): deleted; pull it again."
        )
    from kibitz.models.store import _stamp_path

    _stamp_path(target).unlink(missing_ok=True)  # the old file's verification does not vouch for the new one
    os.replace(fetched, target)
    shutil.rmtree(staging, ignore_errors=True)
    record = Pulled(name, model.repo, model.filename, commit, sha256, target.stat().st_size, time.time())
    _record(record, name)
    return record, target


def forget(name: str) -> bool:
    """Delete a pulled model's file and record; False when it was not pulled."""
    from kibitz.models.store import _stamp_path

    record = pulled_models().get(name)
    if record is None:
        return False
    path = pulled_file(record)
    _stamp_path(path).unlink(missing_ok=True)
    path.unlink(missing_ok=True)
    _record(None, name)
    return True


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
    return f"{type(exc).__name__}{': ' + text if text else ''}"
