"""`kibitz bench serve`: `kibitz serve` under load, as a separate process on loopback, with a model server at the
edge (bench/edge.py, the real OpenAI streaming protocol, instant replies) so the figures are the server's own.

- load: N WebSocket sessions (one player each) for S seconds, each sending its game's state and events (`context`)
  and questions; every message checked: lines that reach another session (crossed), a line number seen twice
  (duplicated), a line whose streamed pieces do not add up to it or a number skipped (dropped), questions with no
  answer; the server's added latency (question → first word, less the model's own time); the server's memory.
- capacity: sessions sharing a screen at 2 fps (a real Atari game's frames, JPEG, as the page sends them) with a
  game-over card every 10 s, more and more of them: the card → line delay at each count.
- pages: the app's first render and the overlay's delay from the server having a word to showing it, in Debian's
  headless Chromium (when Playwright and chromium are installed).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kibitz.bench.edge import EdgeModel
from kibitz.bench.stats import percentile

__all__ = ["capacity_bench", "load_bench", "pages_bench", "percentile"]

TAGGED = re.compile(r"^(q\d+|r) (s\d+):")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss_mb(pid: int) -> float:
    try:
        for row in Path(f"/proc/{pid}/status").read_text().splitlines():
            if row.startswith("VmRSS:"):
                return int(row.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


@dataclass
class Server:
    """`kibitz serve` in its own process, with tokens for `users` players in a fresh store."""

    url: str
    process: subprocess.Popen[bytes]
    tokens: list[str]
    overlay_tokens: list[str]
    home: Path
    log: Path

    @property
    def ws(self) -> str:
        return self.url.replace("http://", "ws://") + "/ws"


@contextlib.contextmanager
def serve(users: int, model_url: str, extra: list[str] | None = None) -> Iterator[Server]:
    from kibitz.memory.store import open_store
    from kibitz.server import tokens

    with tempfile.TemporaryDirectory(prefix="kibitz-bench-serve-") as tmp:
        home = Path(tmp)
        db = str(home / "memory.sqlite")
        store = open_store(db)
        try:
            keys = [tokens.issue(store, f"player{i}", "player") for i in range(users)]
            overlay = [tokens.issue(store, f"player{i}", "overlay") for i in range(users)]
        finally:
            store.close()
        port = _free_port()
        log = home / "serve.log"
        command = [sys.executable, "-m", "kibitz", "serve", "--port", str(port), "--db", db, "--user", "player0"]
        command += ["--backend", "openai", "--base-url", model_url, "--model", "edge", *(extra or [])]
        with log.open("wb") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_up(url, process, log)
            yield Server(url, process, keys, overlay, home, log)
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def _wait_up(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 120.0) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            from kibitz.core.errors import KibitzError

            raise KibitzError(f"kibitz serve stopped at start: {log.read_text(errors='replace')[-400:]}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url + "/health", timeout=2) as response:
            if response.status == 200:
                return
        time.sleep(0.2)
    raise TimeoutError(f"kibitz serve did not answer within {timeout:.0f} s")


# --- load ----------------------------------------------------------------------------------------------------
@dataclass
class PlayerLog:
    """What one simulated player sent and received."""

    index: int
    session: str = ""
    questions: dict[str, float] = field(default_factory=dict)
    """Question tag → when it was sent (Unix time: the model server's and kibitz's clock too)."""
    answered: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Question tag → (when the server had the first word of its answer, when it arrived here)."""
    lines: int = 0
    line_numbers: list[int] = field(default_factory=list)
    crossed: int = 0
    duplicated: int = 0
    broken: int = 0
    """Lines whose streamed pieces did not add up to the line."""
    errors: list[str] = field(default_factory=list)
    messages: int = 0
    connected: bool = False


@dataclass
class LoadResult:
    sessions: int
    seconds: float
    players: list[PlayerLog]
    timings: dict[str, tuple[float, float]]
    rss_mb: list[tuple[float, float]]
    """(seconds since the sessions started, the server's resident memory in MB)."""
    wall_s: float = 0.0

    def figures(self) -> dict[str, Any]:
        sent = sum(len(p.questions) for p in self.players)
        answered = sum(len(p.answered) for p in self.players)
        parts: dict[str, list[float]] = {"added": [], "total": [], "inbound": [], "outbound": [], "delivery": []}
        for p in self.players:
            for tag, at in p.questions.items():
                answer = p.answered.get(tag)
                model = self.timings.get(f"s{p.index}-{tag}")
                if answer is None or model is None:
                    continue
                had, arrived = answer
                parts["total"].append(arrived - at)
                parts["added"].append((arrived - at) - (model[1] - model[0]))
                parts["inbound"].append(model[0] - at)  # question sent → the model asked
                parts["outbound"].append(had - model[1])  # the model's first words → kibitz has a word to show
                parts["delivery"].append(arrived - had)  # kibitz has it → the client has it
        added = parts["added"]
        total = parts["total"]
        split = {
            f"{name}_ms_p{q}": 1000 * percentile(values, q) if values else None
            for name in ("inbound", "outbound", "delivery")
            for q in (50, 95)
            for values in [parts[name]]
        }
        gaps = 0
        for p in self.players:
            numbers = sorted(p.line_numbers)
            if numbers:
                gaps += (numbers[-1] - numbers[0] + 1) - len(set(numbers))
        rss = [mb for _, mb in self.rss_mb]
        steady = [mb for t, mb in self.rss_mb if t >= 10.0]  # every player connected
        return {
            "sessions": self.sessions,
            "connected": sum(p.connected for p in self.players),
            "seconds": self.seconds,
            "messages_received": sum(p.messages for p in self.players),
            "lines": sum(p.lines for p in self.players),
            "questions_sent": sent,
            "questions_answered": answered,
            "crossed": sum(p.crossed for p in self.players),
            "duplicated": sum(p.duplicated for p in self.players),
            "dropped": gaps + sum(p.broken for p in self.players) + (sent - answered),
            "errors": sum(len(p.errors) for p in self.players),
            "error_samples": sorted({e for p in self.players for e in p.errors})[:5],
            "server_added_ms_p50": 1000 * percentile(added, 50) if added else None,
            "server_added_ms_p95": 1000 * percentile(added, 95) if added else None,
            "question_first_word_ms_p95": 1000 * percentile(total, 95) if total else None,
            **split,
            "rss_mb_start": rss[0] if rss else None,
            "rss_mb_connected": steady[0] if steady else None,
            "rss_mb_end": rss[-1] if rss else None,
            "rss_mb_peak": max(rss) if rss else None,
            "rss_mb": [(round(t, 1), round(mb, 1)) for t, mb in self.rss_mb],
        }


async def _player(
    log: PlayerLog, ws_url: str, token: str, start: float, end: float, rng: random.Random, drain_s: float
) -> None:
    from websockets.asyncio.client import connect

    tag = f"s{log.index}"
    async with connect(ws_url, max_size=2**22, open_timeout=60, close_timeout=5) as ws:
        await ws.send(json.dumps({"type": "hello", "token": token, "watch": {"kind": "context", "title": tag}}))
        welcome = json.loads(await ws.recv())
        if welcome.get("type") != "welcome":
            log.errors.append(str(welcome.get("message")))
            return
        log.session, log.connected = welcome["session"], True
        reader = asyncio.create_task(_read(ws, log, tag))
        await asyncio.sleep(max(0.0, start - time.perf_counter()) + rng.uniform(0, 2))
        n, score, next_question = 0, 0, time.perf_counter() + rng.uniform(3, 12)
        while time.perf_counter() < end:
            score += rng.randint(0, 50)
            context: dict[str, Any] = {"type": "context", "game": f"[[{tag}]]", "state": {"score": score, "lives": 3}}
            if rng.random() < 0.2:
                context["events"] = [{"type": "death", "summary": "The player fell into a pit."}]
            await ws.send(json.dumps(context))
            if time.perf_counter() >= next_question:
                n += 1
                question = f"q{n}"
                log.questions[question] = time.time()
                await ws.send(json.dumps({"type": "question", "text": f"[[{question}]] how am I doing?"}))
                next_question = time.perf_counter() + rng.uniform(10, 15)
            await asyncio.sleep(2.0)
        deadline = time.perf_counter() + drain_s
        while time.perf_counter() < deadline and len(log.answered) < len(log.questions):
            await asyncio.sleep(0.2)
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader


async def _read(ws: Any, log: PlayerLog, tag: str) -> None:
    streaming: dict[int, tuple[float, float, list[str]]] = {}
    seen: set[int] = set()
    async for raw in ws:
        message = json.loads(raw)
        now = time.time()
        log.messages += 1
        if message.get("session") not in (None, log.session):
            log.crossed += 1
            continue
        kind = message["type"]
        if kind == "token":
            streaming.setdefault(message["line"], (message["at"], now, []))[2].append(message["text"])
        elif kind in ("line", "line_error"):
            number = message["line"]
            if number in seen:
                log.duplicated += 1
            seen.add(number)
            log.line_numbers.append(number)
            had, first, pieces = streaming.pop(number, (now, now, []))
            if kind == "line_error":
                log.errors.append(message["message"])
                continue
            log.lines += 1
            text = message["text"]
            if "".join(pieces).strip() != text.strip():
                log.broken += 1
            found = TAGGED.match(text)
            if found is None or found.group(2) != tag:
                log.crossed += found is not None  # a line about another player's game
                continue
            if found.group(1).startswith("q"):
                log.answered.setdefault(found.group(1), (had, first))
        elif kind == "error":
            log.errors.append(message["message"])


def load_bench(
    sessions: int = 100,
    seconds: float = 300.0,
    progress: Callable[[str], None] | None = None,
    extra: list[str] | None = None,
) -> LoadResult:
    """`extra`: more `kibitz serve` options (e.g. --config FILE)."""
    say = progress or (lambda _: None)
    with EdgeModel(words_per_second=500) as model, serve(sessions, model.base_url, extra) as server:
        say(f"kibitz serve is up at {server.url}; connecting {sessions} players")
        players = [PlayerLog(i) for i in range(sessions)]
        rss: list[tuple[float, float]] = []
        started = time.perf_counter()

        async def main() -> None:
            start = time.perf_counter() + 5.0
            end = start + seconds
            tasks = [
                asyncio.create_task(
                    _player(p, server.ws, server.tokens[p.index], start, end, random.Random(p.index), 20.0)
                )
                for p in players
            ]
            while not all(t.done() for t in tasks):
                rss.append((time.perf_counter() - start, _rss_mb(server.process.pid)))
                await asyncio.sleep(5.0)
                say(f"{max(0.0, time.perf_counter() - start):.0f} s of {seconds:.0f}")
            for task, player in zip(tasks, players, strict=True):
                if task.exception() is not None:
                    player.errors.append(f"{type(task.exception()).__name__}: {task.exception()}")

        asyncio.run(main())
        result = LoadResult(sessions, seconds, players, dict(model.timings), rss)
        result.wall_s = time.perf_counter() - started
        return result


# --- capacity --------------------------------------------------------------------------------------------------
def capacity_clip(seconds: float = 10.0, fps: float = 2.0) -> list[tuple[bytes, bool]]:
    """One cycle of what a shared screen sends: a real Atari game kibitz has no assets for (Boxing, of the open set's
    dev split) then a game-over card for 2 s, as JPEG frames scaled to 960 pixels wide like the page's; (jpeg, card)."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont

    from kibitz.bench.perception import atari_stream
    from kibitz.bench.shortscreens import letterbox
    from kibitz.perception.screens import _fonts

    def jpeg(image: np.ndarray) -> bytes:
        out = io.BytesIO()
        Image.fromarray(image).resize((960, 540)).save(out, format="JPEG", quality=80)
        return out.getvalue()

    stream = atari_stream("boxing", seed=11)
    play = int((seconds - 2.0) * fps)
    clip: list[tuple[bytes, bool]] = []
    for i in range(play * 30):
        frame = next(stream)
        if i % 30 == 0:
            clip.append((jpeg(letterbox(frame.copy())), False))
    card = Image.new("RGB", (1280, 720))
    fonts = _fonts()
    font = ImageFont.truetype(str(fonts[0]), 96) if fonts else ImageFont.load_default(96)
    ImageDraw.Draw(card).text((340, 300), "GAME OVER", font=font, fill=(255, 255, 255))
    card_jpeg = jpeg(np.asarray(card))
    clip += [(card_jpeg, True)] * int(2.0 * fps)
    return clip


@dataclass
class CapacityLevel:
    sessions: int
    cards: int = 0
    delays: list[float] = field(default_factory=list)
    """Card shown → first word of a game-over line, seconds (a card with no line within 10 s is missed)."""
    frames_sent: int = 0
    frames_dropped: int = 0
    frames_seen: int = 0

    @property
    def missed(self) -> int:
        return self.cards - len(self.delays)

    @property
    def p95(self) -> float:
        if self.missed or not self.delays:
            return float("inf") if self.missed else float("nan")
        return percentile(self.delays, 95)


async def _sharer(
    index: int, ws_url: str, token: str, clip: list[tuple[bytes, bool]], seconds: float, level: CapacityLevel
) -> None:
    from websockets.asyncio.client import connect

    async with connect(ws_url, max_size=2**22, open_timeout=60) as ws:
        await ws.send(json.dumps({"type": "hello", "token": token, "watch": {"kind": "screen", "fps": 2}}))
        if json.loads(await ws.recv()).get("type") != "welcome":
            return
        cards: list[float] = []
        said: list[float] = []
        frames: dict[str, int] = {}

        async def read() -> None:
            starts: dict[int, float] = {}
            async for raw in ws:
                message = json.loads(raw)
                if message["type"] == "token":
                    starts.setdefault(message["line"], time.perf_counter())
                elif message["type"] == "line" and message["trigger"] == "game_over":
                    said.append(starts.get(message["line"], time.perf_counter()))
                elif message["type"] == "state":
                    frames["seen"], frames["dropped"] = message["frames"], message["dropped_frames"]

        reader = asyncio.create_task(read())
        await asyncio.sleep(index * 0.37)  # the players do not all start on the same beat
        end = time.perf_counter() + seconds
        i = 0
        while time.perf_counter() < end:
            data, is_card = clip[i % len(clip)]
            if is_card and not clip[(i - 1) % len(clip)][1]:
                cards.append(time.perf_counter())
            await ws.send(data)
            level.frames_sent += 1
            i += 1
            await asyncio.sleep(0.5)
        await asyncio.sleep(10.0)  # the last card's line
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader
        level.cards += len(cards)
        for shown in cards:
            after = [t - shown for t in said if 0 <= t - shown <= 10.0]
            if after:
                level.delays.append(min(after))
        level.frames_seen += frames.get("seen", 0)
        level.frames_dropped += frames.get("dropped", 0)


def capacity_bench(
    counts: tuple[int, ...] = (1, 2, 3, 4, 6, 8),
    seconds: float = 40.0,
    limit_s: float = 2.0,
    progress: Callable[[str], None] | None = None,
) -> list[CapacityLevel]:
    """Shared-screen sessions at 2 fps, more at each step, until the card → line p95 passes `limit_s`."""
    say = progress or (lambda _: None)
    clip = capacity_clip()
    levels: list[CapacityLevel] = []
    with EdgeModel(words_per_second=500) as model, serve(max(counts), model.base_url) as server:
        for count in counts:
            level = CapacityLevel(count)
            say(f"{count} shared screens for {seconds:.0f} s")

            async def main(level: CapacityLevel = level, count: int = count) -> None:
                await asyncio.gather(
                    *(_sharer(i, server.ws, server.tokens[i], clip, seconds, level) for i in range(count))
                )

            asyncio.run(main())
            levels.append(level)
            if not level.p95 <= limit_s:
                break
    return levels


async def _ask(ws_url: str, token: str, count: int) -> None:
    """A player asks `count` questions, one after the other's answer."""
    from websockets.asyncio.client import connect

    async with connect(ws_url, open_timeout=60) as ws:
        await ws.send(json.dumps({"type": "hello", "token": token, "watch": {"kind": "context", "title": "s0"}}))
        await ws.recv()
        for i in range(count):
            await ws.send(json.dumps({"type": "question", "text": f"[[q{i}]] how is it going?"}))
            while True:
                message = json.loads(await ws.recv())
                if message["type"] in ("line", "line_error"):
                    break
            await asyncio.sleep(1.0)


# --- pages -----------------------------------------------------------------------------------------------------
def pages_bench(repeats: int = 5, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The app's first render (navigation → signed in and drawn) and the overlay's delay from the server having a
    word to showing it, in headless Chromium on this machine."""
    import shutil

    from playwright.sync_api import sync_playwright

    say = progress or (lambda _: None)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        from kibitz.core.errors import KibitzError

        raise KibitzError("The pages part needs Debian's chromium (apt-get install chromium).")
    renders: list[float] = []
    lags: list[float] = []
    with EdgeModel(words_per_second=20) as model, serve(1, model.base_url) as server, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        try:
            for i in range(repeats):
                context = browser.new_context()
                page = context.new_page()
                page.goto(f"{server.url}/#token={server.tokens[0]}")
                page.wait_for_selector("body[data-ready='1']", timeout=30_000)
                renders.append(page.evaluate("window.kibitz.readyAt") / 1000)
                context.close()
                say(f"first render {i + 1} of {repeats}")
            # The overlay alone in its window, as OBS shows it (a page in the background gets no animation frames);
            # the player's questions come over the WebSocket, as the app sends them.
            overlay = browser.new_context().new_page()
            overlay.goto(f"{server.url}/overlay#token={server.overlay_tokens[0]}")
            overlay.wait_for_timeout(1000)
            asker = threading.Thread(target=lambda: asyncio.run(_ask(server.ws, server.tokens[0], repeats)))
            asker.start()  # Playwright's own loop runs on this thread
            asker.join()
            say(f"overlay: {repeats} lines")
            overlay.wait_for_timeout(500)
            lags = overlay.evaluate("window.kibitz.lags")
        finally:
            browser.close()
    return {
        "first_render_s": renders,
        "first_render_s_max": max(renders) if renders else None,
        "overlay_word_ms": [1000 * x for x in lags],
        "overlay_word_ms_p95": 1000 * percentile(lags, 95) if lags else None,
        "overlay_words": len(lags),
    }


def mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


def environment() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
