"""`kibitz serve` end to end in a real headless Chromium (Debian's, driven by Playwright by its path; Playwright never
downloads a browser here): the app and the overlay pages, a built-in game on the server, a shared screen through the
page's own upload code, a thumbs-down stored, a question answered. The model is a server at the process edge
(tests/fake_openai.py). With KIBITZ_SCREENSHOTS=DIR the test also saves the screenshots the README shows
(scripts/screenshots.sh)."""

from __future__ import annotations

import base64
import io
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="install kibitz[serve] for the web server")
pytest.importorskip("playwright", reason="install kibitz[dev] for the browser tests (playwright)")

from fake_openai import FakeOpenAI
from kibitz.core.config import load_config
from kibitz.memory.store import open_store
from kibitz.server import tokens
from kibitz.server.app import ServeSettings, create_app
from serving import serving

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip("install Debian's chromium (scripts/system-deps.sh) for the browser tests", allow_module_level=True)

FLAGS = [
    "--use-fake-ui-for-media-stream",  # screen sharing is granted without a dialog
    "--use-fake-device-for-media-stream",
    "--auto-select-desktop-capture-source=Entire screen",
    "--no-sandbox",
]


class Running:
    def __init__(self, url: str, db: str, keys: dict[str, str], fake: FakeOpenAI) -> None:
        self.url, self.db, self.keys, self.fake = url, db, keys, fake


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Running]:
    db = str(tmp_path / "memory.sqlite")
    store = open_store(db)
    keys = {"player": tokens.issue(store, "ana", "player"), "overlay": tokens.issue(store, "ana", "overlay")}
    store.close()
    with FakeOpenAI() as fake:
        fake.reply_fn = _reply
        config = load_config(None, {"llm.backend": "openai", "llm.base_url": fake.base_url, "llm.model": "fake"})

        def make_app(port: int) -> Any:
            return create_app(ServeSettings(config=config, db=db, port=port, warm=False))

        with serving(make_app) as url:
            yield Running(url, db, keys, fake)


def _reply(body: dict[str, Any]) -> str:
    user = body["messages"][-1]["content"]
    if "asks you" in user:
        return "You have three lives left, so take your time. Go for it!"
    return "Nice jump over that gap, keep the speed up!"


@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            yield chromium
        finally:
            chromium.close()


def _shots() -> Path | None:
    where = os.environ.get("KIBITZ_SCREENSHOTS")
    return Path(where) if where else None


def _frame_url(image: np.ndarray) -> str:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(image).save(out, format="PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


def test_the_app_and_the_overlay_with_a_builtin_game(served: Running, browser: Any) -> None:
    pytest.importorskip("cynes", reason="install kibitz[nes] for Super Mario Bros.")
    context = browser.new_context(viewport={"width": 1400, "height": 860})
    overlay = context.new_page()
    overlay.goto(f"{served.url}/overlay?panel=1#token={served.keys['overlay']}")
    app = context.new_page()
    started = time.perf_counter()
    app.goto(f"{served.url}/#token={served.keys['player']}")
    app.wait_for_selector("body[data-ready='1']", timeout=15_000)
    assert time.perf_counter() - started < 15  # first render is timed by `kibitz bench serve`, not here
    assert "token=" not in app.url, "the token left the address bar"
    app.select_option("#game", "smb")
    app.click("#start")
    app.wait_for_selector("#status.on", timeout=20_000)
    first = app.wait_for_selector("#lines li.line[data-done='1']", timeout=60_000)
    said = first.query_selector(".text").inner_text()
    assert said
    overlay.wait_for_selector("#bubble:not([hidden])", timeout=20_000)
    assert overlay.inner_text("#said").strip()
    app.wait_for_function("document.querySelector('#st-game').textContent.startsWith('smb')", timeout=20_000)

    # A thumbs-down on the first line reaches the player's stored memory and profile.
    first.query_selector("button.down").click()
    deadline = time.monotonic() + 20
    kept: list[str] = []
    while time.monotonic() < deadline:
        store = open_store(served.db)
        try:
            kept = [m.text for m in store.memories("ana")]
        finally:
            store.close()
        if any(said in k and k.startswith("Disliked") for k in kept):
            break
        time.sleep(0.3)
    assert any(said in k and k.startswith("Disliked") for k in kept), kept

    # A question typed in the app is answered.
    app.fill("#question", "how many lives do I have left?")
    app.press("#question", "Enter")
    app.wait_for_function(
        "[...document.querySelectorAll('#lines li.line[data-done]')]"
        ".some(li => li.textContent.includes('three lives'))",
        timeout=60_000,
    )
    shots = _shots()
    if shots is not None:
        shots.mkdir(parents=True, exist_ok=True)
        # What the session remembered (the thumbs-down) shows in the memory panel a moment later.
        remembered = "!document.querySelector('#memories').textContent.includes('nothing yet')"
        app.wait_for_function(remembered, timeout=15_000)
        app.screenshot(path=str(shots / "serve-app.png"))
        # The overlay as OBS shows it: over the game (the page itself is transparent).
        from kibitz.games.base import get_game
        from kibitz.sources.emulator import EmulatorSource

        game = get_game("smb")
        frames = EmulatorSource(game, fps=60, realtime=False, seed=1).frames()
        image = next(f.image for i, f in enumerate(frames) if i == 240)
        overlay.set_viewport_size({"width": 1024, "height": 600})
        overlay.add_style_tag(
            content=f"html {{ background: url({_frame_url(image)}) center / cover; image-rendering: pixelated; }}"
        )
        overlay.evaluate("document.getElementById('bubble').hidden = false")
        overlay.screenshot(path=str(shots / "serve-overlay.png"))
    context.close()


def test_a_screen_shared_from_the_page_reaches_perception(served: Running, browser: Any) -> None:
    """The page's own upload code (canvas → JPEG → WebSocket) carries a real game's frames, then its game-over card;
    perception sees the card and the companion says a line about it. Chromium's fake screen capture is tried too."""
    pytest.importorskip("ale_py", reason="install kibitz[atari] for Atari games")
    pytest.importorskip("rapidocr", reason="install kibitz[vision] for OCR")
    from kibitz.bench.perception import atari_stream
    from kibitz.bench.shortscreens import letterbox
    from test_server import _card

    stream = atari_stream("boxing", seed=5)
    frames = []
    for i in range(8 * 15):
        image = next(stream)
        if i % 15 == 0:
            frames.append(_frame_url(letterbox(image.copy())))
    card = _frame_url(_card("GAME OVER"))
    context = browser.new_context(viewport={"width": 1400, "height": 860})
    app = context.new_page()
    app.goto(f"{served.url}/#token={served.keys['player']}")
    app.wait_for_selector("body[data-ready='1']", timeout=15_000)
    app.check("input[name=kind][value=screen]")
    app.select_option("#fps", "5")
    app.click("#start")
    app.wait_for_selector("#status.on", timeout=20_000)
    # The page shared the screen Chromium's fake capture gives (getDisplayMedia, granted by the flags above), and its
    # frames reached perception; then a canvas plays a real game through the same upload code.
    assert app.evaluate("document.getElementById('preview').videoWidth") > 0
    app.wait_for_function("parseInt(document.querySelector('#st-frames').textContent) >= 3", timeout=20_000)
    app.evaluate(
        """async (urls) => {
            const canvas = document.createElement('canvas');
            canvas.width = 1280; canvas.height = 720;
            window.kibitz.clip = canvas;
            const images = await Promise.all(urls.map(u => new Promise(ok => {
                const img = new Image(); img.onload = () => ok(img); img.src = u; })));
            let i = 0;
            window.kibitz.player = setInterval(() => {
                canvas.getContext('2d').drawImage(images[Math.min(i, images.length - 1)], 0, 0); i++;
            }, 250);
            window.kibitz.shareFrom(canvas, 5);
        }""",
        [*frames, *([card] * 60)],
    )
    app.wait_for_function(
        "[...document.querySelectorAll('#lines li.event')].some(li => li.textContent.includes('game is over') ||"
        " li.textContent.toLowerCase().includes('game over'))",
        timeout=60_000,
    )
    app.wait_for_selector("#lines li.line[data-done='1']", timeout=60_000)
    sent = app.evaluate("window.kibitz.sent")
    assert sent >= 8
    frames_seen = int(app.inner_text("#st-frames").split()[0])
    assert frames_seen >= 4
    context.close()


def test_the_example_mod_client_talks_to_the_server(served: Running) -> None:
    import subprocess
    import sys

    example = Path(__file__).parents[1] / "examples" / "mod_client.py"
    ws = served.url.replace("http://", "ws://") + "/ws"
    done = subprocess.run(
        [sys.executable, str(example), "--url", ws, "--token", served.keys["player"]],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "'type': 'welcome'" in done.stdout and "False Knight" in done.stdout
    assert done.stdout.count("companion:") >= 2, done.stdout  # the death and the question
