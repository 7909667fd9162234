"""`kibitz serve` from the command line: tokens made once and kept only as hashes, --new-tokens revokes, a port in
use or a missing model is one sentence, and the real process serves until it is stopped."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

pytest.importorskip("fastapi", reason="install kibitz[serve] for the web server")

from kibitz.cli.main import app
from kibitz.memory.store import open_store
from kibitz.server import tokens
from serving import free_port

TOKEN = re.compile(r"#token=(kbzo?_[A-Za-z0-9_-]+)")


def test_tokens_are_shown_once_and_kept_only_as_hashes(tmp_path: Path) -> None:
    db = str(tmp_path / "memory.sqlite")
    first = CliRunner().invoke(app, ["serve", "--db", db, "--user", "ana", "--tokens-only"], terminal_width=200)
    assert first.exit_code == 0, first.output
    player, overlay = TOKEN.findall(first.output)
    assert player.startswith("kbz_") and overlay.startswith("kbzo_")
    raw = Path(db).read_bytes() + b"".join(p.read_bytes() for p in tmp_path.glob("memory.sqlite-*"))
    assert player.encode() not in raw and overlay.encode() not in raw
    store = open_store(db)
    try:
        assert tokens.owner(store, player) == ("ana", "player") and tokens.owner(store, overlay) == ("ana", "overlay")
    finally:
        store.close()
    again = CliRunner().invoke(app, ["serve", "--db", db, "--user", "ana", "--tokens-only"], terminal_width=200)
    assert again.exit_code == 0 and not TOKEN.findall(again.output) and "--new-tokens" in again.output
    renewed = CliRunner().invoke(
        app, ["serve", "--db", db, "--user", "ana", "--tokens-only", "--new-tokens"], terminal_width=200
    )
    new_player, _ = TOKEN.findall(renewed.output)
    store = open_store(db)
    try:
        assert tokens.owner(store, player) is None and tokens.owner(store, new_player) == ("ana", "player")
    finally:
        store.close()


def test_the_schema_is_printed() -> None:
    result = CliRunner().invoke(app, ["serve", "--schema"])
    assert result.exit_code == 0 and "kibitz serve WebSocket protocol v1" in json.loads(result.output)["title"]


def test_a_missing_model_is_one_sentence_before_any_token(tmp_path: Path) -> None:
    db = str(tmp_path / "memory.sqlite")
    result = subprocess.run(
        [sys.executable, "-m", "kibitz", "serve", "--db", db, "--port", str(free_port()), "--model", "no-such-model"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "no-such-model" in result.stderr and "#token=" not in result.stdout


def test_the_server_process_serves_until_stopped(tmp_path: Path) -> None:
    port = free_port()
    command = [sys.executable, "-m", "kibitz", "serve", "--db", str(tmp_path / "m.sqlite"), "--port", str(port)]
    process = subprocess.Popen([*command, "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        health = None
        while time.monotonic() < deadline and health is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                    health = json.loads(response.read())
            except OSError:
                time.sleep(0.2)
        assert health is not None and health["status"] == "ok"
        busy = subprocess.run([*command, "--quiet"], capture_output=True, text=True, timeout=60)
        assert busy.returncode != 0 and "pick another --port" in busy.stderr
    finally:
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=30)
    assert process.returncode in (0, 130), out
    assert "Traceback" not in out
