"""Voice in the web app, end to end in a real headless Chromium: the page's microphone is Chromium's fake capture
device playing a WAV of a spoken question (made with kibitz's own TTS), the page streams it through its AudioWorklet
to `kibitz serve`, the server hears the question (Whisper), answers (a model server at the edge,
tests/fake_openai.py) and streams the companion's speech, which the app page and the overlay both schedule for
playback; push-to-talk counts only held audio. With KIBITZ_SCREENSHOTS=DIR the first test also saves
DIR/app-voice.png."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="install kibitz[serve] for the web server")
pytest.importorskip("playwright", reason="install kibitz[dev] for the browser tests (playwright)")

import test_serve_browser
from test_serve_browser import CHROMIUM, FLAGS, Running, _shots

served = test_serve_browser.served  # the same server as the other browser tests (a fixture)


@pytest.fixture
def question_wav(tmp_path: Path) -> Path:
    """'How many coins do I have?' with 1 s of silence before and 3 s after (Chromium loops the file)."""
    pytest.importorskip("soxr", reason="install kibitz[voice] for speech")
    from kibitz.voice import audio
    from kibitz.voice.tts import load_voice, voices

    engine = load_voice(voices()["joe"])
    samples = np.asarray(engine.synthesize("How many coins do I have?"), dtype=np.float32)
    silence = np.zeros(engine.rate, np.float32)
    path = tmp_path / "question.wav"
    audio.save(path, np.concatenate([silence, samples, silence, silence, silence]), engine.rate)
    return path


@pytest.fixture
def talking_browser(question_wav: Path) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    args = [
        *FLAGS,
        f"--use-file-for-fake-audio-capture={question_wav}",  # the fake microphone says the question
        "--autoplay-policy=no-user-gesture-required",
    ]
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        try:
            yield chromium
        finally:
            chromium.close()


def test_a_question_asked_aloud_in_the_app_is_heard_answered_and_spoken(served: Running, talking_browser: Any) -> None:
    context = talking_browser.new_context(viewport={"width": 1400, "height": 860})
    overlay = context.new_page()
    overlay.goto(f"{served.url}/overlay#token={served.keys['overlay']}")
    app = context.new_page()
    app.goto(f"{served.url}/#token={served.keys['player']}")
    app.wait_for_selector("body[data-ready='1']", timeout=15_000)
    started = time.perf_counter()
    app.check("input[name=kind][value=context]")
    app.check("#voice")
    assert app.is_enabled("#ptt") and not app.is_checked("#ptt")
    app.click("#start")
    app.wait_for_selector("#status.on", timeout=20_000)
    # The page's microphone streams: its worklet's 40 ms blocks leave as binary messages.
    app.wait_for_selector("#voice-note:not([hidden])", timeout=10_000)
    assert "Voice on" in app.inner_text("#voice-note"), app.inner_text("#voice-note")
    app.wait_for_function("window.kibitz.micSent >= 25", timeout=10_000)
    # The server heard the question and shows it as the player's own row; then the companion answers it aloud.
    # (Chromium loops the file from wherever it was when the page opened the microphone, and the server drops audio
    # until its voice is loaded: the first row may be the question's tail; a later loop asks it whole.)
    app.wait_for_function(
        "[...document.querySelectorAll(\"#lines li.you[data-heard='1']\")]"
        ".some(li => li.textContent.toLowerCase().includes('coins'))",
        timeout=45_000,
    )
    app.wait_for_function(
        "[...document.querySelectorAll('#lines li.line[data-done]')].some(li => li.textContent.includes('You have'))",
        timeout=30_000,
    )
    app.wait_for_function("window.kibitz.speech.played > 0", timeout=20_000)
    overlay.wait_for_function("window.kibitz.speech.played > 0", timeout=10_000)  # the stream hears it too
    assert not app.query_selector_all("#lines li.error"), app.inner_text("#lines")
    shots = _shots()
    if shots is not None:
        shots.mkdir(parents=True, exist_ok=True)
        app.screenshot(path=str(shots / "app-voice.png"))
    # Stop ends the session: the microphone is released and the voice note goes.
    app.click("#stop")
    app.wait_for_selector("#status.off", timeout=10_000)
    sent = app.evaluate("window.kibitz.micSent")
    time.sleep(0.3)
    assert app.evaluate("window.kibitz.micSent") == sent
    assert app.is_hidden("#voice-note")
    assert time.perf_counter() - started < 90
    context.close()


def test_push_to_talk_hears_only_while_the_button_is_held(served: Running, talking_browser: Any) -> None:
    context = talking_browser.new_context(viewport={"width": 1400, "height": 860})
    app = context.new_page()
    app.goto(f"{served.url}/#token={served.keys['player']}")
    app.wait_for_selector("body[data-ready='1']", timeout=15_000)
    app.check("input[name=kind][value=context]")
    app.check("#voice")
    app.check("#ptt")
    app.click("#start")
    app.wait_for_selector("#hold:not([hidden])", timeout=20_000)
    assert "hold" in app.inner_text("#voice-note").lower()
    # The microphone streams all along, but nothing counts until the button is held (the file says the question
    # about every 5.5 s).
    time.sleep(6.0)
    assert app.evaluate("window.kibitz.micSent") >= 100
    assert not app.query_selector_all("#lines li.you"), app.inner_text("#lines")
    app.hover("#hold")
    app.mouse.down()
    assert "held" in app.get_attribute("#hold", "class")
    time.sleep(6.0)
    app.mouse.up()
    assert "held" not in app.get_attribute("#hold", "class")
    # (Chromium loops the file from wherever it was when the page opened the microphone, and the server drops audio
    # until its voice is loaded: the first row may be the question's tail; a later loop asks it whole.)
    app.wait_for_function(
        "[...document.querySelectorAll(\"#lines li.you[data-heard='1']\")]"
        ".some(li => li.textContent.toLowerCase().includes('coins'))",
        timeout=45_000,
    )
    # The space bar holds it too, unless a text field has the focus.
    app.focus("#hold")
    app.keyboard.down("Space")
    assert "held" in app.get_attribute("#hold", "class")
    app.keyboard.up("Space")
    assert "held" not in app.get_attribute("#hold", "class")
    app.focus("#question")
    app.keyboard.down("Space")
    assert "held" not in app.get_attribute("#hold", "class")
    app.keyboard.up("Space")
    # A hush stops the speech at once: a second of sound is scheduled, then cut.
    speaking = app.evaluate(
        """() => {
            const pcm = new Int16Array(24000).map((_, i) => Math.round(8000 * Math.sin(i / 10)));
            const bytes = new Uint8Array(pcm.buffer);
            let text = '';
            for (const b of bytes) text += String.fromCharCode(b);
            kibitz.speech.play({ type: 'audio', seq: 1, rate: 24000, pcm16: btoa(text) });
            return kibitz.speech.speaking();
        }"""
    )
    assert speaking
    app.evaluate("kibitz.speech.hush()")
    assert app.evaluate("[kibitz.speech.speaking(), kibitz.speech.hushed]") == [False, 1]
    context.close()
