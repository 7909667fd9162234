"""Fuzzing `kibitz serve`: Hypothesis over the WebSocket protocol (malformed, oversized, wrongly typed and unknown
messages) and Schemathesis over the REST API (its OpenAPI description): no server error, every error one clear
sentence, and the session still answers afterwards."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="install kibitz[serve] for the web server")
pytest.importorskip("hypothesis", reason="install kibitz[dev] for the fuzz tests")
pytest.importorskip("schemathesis", reason="install kibitz[dev] for the fuzz tests")

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from fake_openai import FakeOpenAI
from kibitz.core.config import load_config
from kibitz.memory.records import Memory
from kibitz.memory.store import open_store
from kibitz.server import protocol as p
from kibitz.server import tokens
from kibitz.server.app import ServeSettings, create_app
from serving import serving

SERVER_MESSAGE = TypeAdapter(p.ServerMessage)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
TYPES = st.sampled_from(["hello", "question", "rate", "context", "ping", "frame", "", "QUESTION", "welcome"])
VALID = [
    {"type": "question", "text": "where do I go now?"},
    {"type": "rate", "line": 1, "rating": "up"},
    {"type": "context", "game": "Celeste", "state": {"deaths": 3}, "events": [{"type": "death", "summary": "fell"}]},
    {"type": "ping"},
]


@st.composite
def mutated(draw: st.DrawFn) -> Any:
    """A valid message with one field replaced, removed or added, or any JSON value with a message type."""
    base = dict(draw(st.sampled_from(VALID)))
    how = draw(st.sampled_from(["replace", "remove", "add", "any", "huge"]))
    key = draw(st.sampled_from(sorted(base)))
    if how == "replace":
        base[key] = draw(JSON)
    elif how == "remove":
        base.pop(key)
    elif how == "add":
        base[draw(st.text(min_size=1, max_size=12))] = draw(JSON)
    elif how == "huge":
        base[key] = "x" * draw(st.integers(400, 20_000))
    else:
        return {"type": draw(TYPES), **draw(st.dictionaries(st.text(max_size=10), JSON, max_size=4))}
    return base


@given(raw=st.one_of(JSON.map(json.dumps), mutated().map(json.dumps), st.text(max_size=200), st.binary(max_size=64)))
@settings(max_examples=600, deadline=None, derandomize=True)  # the same examples on every run: CI stays stable
def test_parse_returns_a_message_or_one_sentence(raw: str | bytes) -> None:
    try:
        message = p.parse(raw)
    except ValueError as exc:
        text = str(exc)
        assert text and "\n" not in text and len(text) < 400 and text.rstrip(")").endswith((".", "'")), text
    else:
        assert message.type in {"hello", "question", "rate", "context", "ping"}


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "memory.sqlite")


def test_a_session_survives_a_storm_of_bad_messages(db: str, fake_server: FakeOpenAI) -> None:
    from fastapi.testclient import TestClient

    store = open_store(db)
    token = tokens.issue(store, "ana", "player")
    store.close()
    config = load_config(None, {"llm.backend": "openai", "llm.base_url": fake_server.base_url, "llm.model": "x"})
    app = create_app(ServeSettings(config=config, db=db, extra_hosts=("testserver",), warm=False, rate=100_000))
    received: list[dict[str, Any]] = []
    with TestClient(app) as client, client.websocket_connect("/ws") as ws:
        ws.send_text(json.dumps({"type": "hello", "token": token, "watch": {"kind": "screen", "fps": 2}}))
        assert ws.receive_json()["type"] == "welcome"

        @given(message=st.one_of(mutated(), JSON), binary=st.binary(max_size=256))
        @settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
        def storm(message: Any, binary: bytes) -> None:
            ws.send_text(json.dumps(message))
            ws.send_bytes(binary)  # a frame that is not a picture

        storm()
        ws.send_text(json.dumps({"type": "ping"}))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            message = ws.receive_json()
            received.append(message)
            if message["type"] == "pong":
                break
        assert received[-1]["type"] == "pong", "the session stopped answering"
        ws.send_text(json.dumps({"type": "question", "text": "still there?"}))
        while (message := ws.receive_json())["type"] != "line" or message["trigger"] != "question":
            received.append(message)
    for message in received:
        SERVER_MESSAGE.validate_python(message)  # everything the server sent is in its published protocol
        if message["type"] == "error":
            assert "\n" not in message["message"] and message["code"] != "server", message


# --- REST: Schemathesis drives every endpoint of the OpenAPI description --------------------------------------
@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    db = str(tmp_path_factory.mktemp("fuzz") / "memory.sqlite")
    store = open_store(db)
    token = tokens.issue(store, "ana", "player")
    for i in range(5):
        store.remember(Memory("ana", f"Fact number {i} about the game.", "smb", "levels", "fact"))
    store.remember(Memory("bo", "Bo's own secret.", "", "life", "life"))
    store.close()
    settings = ServeSettings(config=load_config(None, {}), db=db, speak=False)

    def make_app(port: int) -> Any:
        settings.port = port
        return create_app(settings)

    with serving(make_app) as url:
        yield url, token


def test_rest_api(api: tuple[str, str]) -> None:
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    url, token = api
    schema = schemathesis.openapi.from_url(url + "/openapi.json")
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 9
    statuses: list[int] = []
    auths = st.sampled_from([{"Authorization": f"Bearer {token}"}, {}, {"Authorization": "Bearer kbz_forged"}])
    for operation in operations:

        @given(case=operation.as_strategy(), headers=auths)
        @settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
        def call(case: Any, headers: dict[str, str]) -> None:
            response = case.call(base_url=url, headers=headers)
            statuses.append(response.status_code)
            case.validate_response(response, checks=checks)
            if response.status_code >= 400:
                detail = response.json()["detail"]
                assert isinstance(detail, str) and "\n" not in detail, detail
            assert "secret" not in response.text, "another player's memory reached this token"

        call()
    # Every endpoint was reached with and without a valid token.
    assert len(statuses) >= 10 * len(operations) and {200, 401, 422} <= set(statuses), sorted(set(statuses))
