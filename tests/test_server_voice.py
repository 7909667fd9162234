"""Voice in `kibitz serve`: a page streams microphone audio, the server hears the question (Whisper), answers, and
streams the companion's speech to the page and the overlay; the player talking over it hushes it. Real models, the
real app over WebSockets, a model server at the edge (tests/fake_openai.py)."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from fake_openai import FakeOpenAI
from kibitz.server import protocol as p
from kibitz.voice import audio
from kibitz.voice.records import RATE
from kibitz.voice.tts import load_voice, voices
from test_server import hello, make_client, until


@pytest.fixture
def client(db: str, keys: dict[str, str], fake_server: FakeOpenAI) -> Any:
    with make_client(db, fake_server.base_url) as c:
        yield c


def spoken(text: str, voice: str = "espeak-en") -> np.ndarray:
    """The player's words, as loud at the microphone as the companion's voice is played (peak 0.8)."""
    engine = load_voice(voices()[voice])
    samples = audio.resample(engine.synthesize(text), engine.rate)
    return samples * (0.8 / max(float(np.abs(samples).max()), 1e-6))


def send_audio(ws: Any, samples: np.ndarray, block_ms: int = 40, pace: float = 0.0) -> None:
    n = RATE * block_ms // 1000
    for i in range(0, len(samples), n):
        ws.send_bytes(p.AUDIO_MAGIC + audio.float_to_pcm16(samples[i : i + n]))
        if pace:
            time.sleep(block_ms / 1000 * pace)


def test_a_spoken_question_is_heard_answered_and_spoken_to_page_and_overlay(
    client: TestClient, keys: dict[str, str]
) -> None:
    with client.websocket_connect("/ws") as overlay, client.websocket_connect("/ws") as ws:
        overlay.send_text(hello(keys["ana-overlay"], role="overlay"))
        until(overlay, "welcome")
        ws.send_text(hello(keys["ana"], watch={"kind": "context"}, voice=True))
        session = until(ws, "welcome")["session"]
        time.sleep(3.0)  # the session loads its voice (audio before it is ready is dropped, like a muted mic)
        question = spoken("How many coins do I have?", "joe")
        send_audio(ws, np.concatenate([np.zeros(RATE // 2, np.float32), question, np.zeros(RATE, np.float32)]))
        seen: list[dict[str, Any]] = []
        heard = until(ws, "heard", keep=seen)
        while not heard["final"]:
            heard = until(ws, "heard", keep=seen)
        assert "coins" in heard["text"].lower() and heard["session"] == session
        line = until(ws, "line", keep=seen)
        assert line["trigger"] == "question" and line["text"].startswith("You have")
        speech = [m for m in seen if m["type"] == "audio"]
        while len(speech) < 5:
            speech.append(until(ws, "audio"))
        assert [m["seq"] for m in speech] == sorted(m["seq"] for m in speech)
        samples = np.concatenate([audio.pcm16_to_float(base64.b64decode(m["pcm16"])) for m in speech])
        assert {m["rate"] for m in speech} == {p.SPEECH_RATE} and np.abs(samples).max() > 0.05
        on_stream = until(overlay, "audio")
        assert on_stream["session"] == session  # the stream hears the companion too


def test_talking_over_the_companion_hushes_it(client: TestClient, keys: dict[str, str]) -> None:
    with client.websocket_connect("/ws") as ws:
        ws.send_text(hello(keys["ana"], watch={"kind": "context"}, voice=True))
        until(ws, "welcome")
        time.sleep(3.0)
        ws.send_text(json.dumps({"type": "question", "text": "how many lives do I have left?"}))
        line = until(ws, "line", timeout=60)["text"]  # written at once by the fake model, spoken over seconds
        until(ws, "audio", timeout=60)
        # Silence for a moment while it speaks, then the player talks over it (in real time, as a page would).
        send_audio(ws, np.zeros(RATE, np.float32), pace=1.0)
        send_audio(ws, spoken("Wait, stop, where is the exit?"), pace=1.0)
        hush = until(ws, "hush", timeout=20)
        assert hush["said"] and line.startswith(hush["said"]) and len(hush["said"]) < len(line)


def test_audio_needs_a_voice_session_and_a_sane_size(client: TestClient, keys: dict[str, str]) -> None:
    with client.websocket_connect("/ws") as ws:
        ws.send_text(hello(keys["ana"], watch={"kind": "context"}))
        until(ws, "welcome")
        ws.send_bytes(p.AUDIO_MAGIC + b"\x00\x00" * 320)
        error = until(ws, "error")
        assert error["code"] == "bad_message" and '"voice": true' in error["message"]
    with client.websocket_connect("/ws") as ws:
        ws.send_text(hello(keys["ana"], watch={"kind": "context"}, voice=True))
        until(ws, "welcome")
        ws.send_bytes(p.AUDIO_MAGIC + b"\x00" * (p.MAX_AUDIO + 2))
        assert until(ws, "error")["code"] == "too_big"
        time.sleep(0.3)  # errors about single messages come at most five a second
        ws.send_bytes(p.AUDIO_MAGIC + b"\x00" * 3)
        assert until(ws, "error")["code"] == "bad_message"
        ws.send_text(json.dumps({"type": "talk", "pressed": True}))  # push-to-talk on a session without it: no-op
        ws.send_text(json.dumps({"type": "ping"}))
        assert until(ws, "pong")["type"] == "pong"
