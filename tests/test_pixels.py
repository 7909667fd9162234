"""The pixels-only perceivers end to end: learnt assets on disk, real emulator frames, the VLM at the edge."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from fake_openai import FakeOpenAI
from kibitz.core.config import PerceptionConfig, VLMSection
from kibitz.core.records import Frame
from kibitz.games import get_game
from kibitz.perception.assets import collect, learn_builtin
from kibitz.perception.classifier import EMBEDDERS
from kibitz.perception.pixels import GenericPerceiver, PixelPerceiver


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch", reason="install kibitz[vision] for the EfficientNet embedder")
    path = tmp_path_factory.mktemp("kibitz-home")
    mp = pytest.MonkeyPatch()
    mp.setenv("KIBITZ_HOME", str(path))
    done = learn_builtin(EMBEDDERS.get("efficientnet-lite0")(), ["breakout", "seaquest"])
    assert "glyphs" in done["breakout"]
    yield path
    mp.undo()


def frames(game: str, seed: int, seconds: float, every: int) -> list[Frame]:
    return [
        Frame(t=s.t, image=s.image, source="test", index=i, state=None)
        for i, s in enumerate(collect(game, seed, seconds, every=every))
    ]


def test_pixel_perceiver_reads_a_known_game(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIBITZ_HOME", str(home))
    perceiver = PixelPerceiver(get_game("breakout"), PerceptionConfig(recognise_every_s=1.0))
    truth = list(collect("breakout", 1, 30.0, every=2))
    hits = 0
    for i, s in enumerate(truth):
        obs = perceiver.perceive(Frame(t=s.t, image=s.image, source="test", index=i))
        hits += obs.value("score") == s.hud["score"]
    assert hits / len(truth) >= 0.95
    assert obs.game == "breakout" and obs.scene == "gameplay"
    # Bad frames: skipped with a reason, the last observation stands.
    for bad in (np.zeros((0, 0, 3), np.uint8), np.zeros((3, 3), np.uint8), np.zeros((5,), np.uint8)):
        after = perceiver.perceive(Frame(t=31.0, image=bad, source="test", index=9999))
        assert after.value("score") == obs.value("score")
    assert perceiver.bad_frames == 3
    # Odd but usable frames: huge, greyscale, float, with alpha: perceived, no wild values.
    odd = [
        np.zeros((3000, 4000, 3), np.uint8),
        truth[-1].image.mean(axis=2).astype(np.uint8),
        truth[-1].image.astype(np.float32) / 255.0,
        np.dstack([truth[-1].image, np.full(truth[-1].image.shape[:2], 255, np.uint8)]),
    ]
    for i, image in enumerate(odd):
        seen = perceiver.perceive(Frame(t=32.0 + i, image=image, source="test", index=10000 + i))
        assert seen.value("score") in (None, obs.value("score"))
    assert perceiver.bad_frames == 3


@pytest.mark.parametrize("pillarboxed", [False, True], ids=["window", "pillarboxed"])
def test_a_capture_scaled_by_a_non_integer_factor_is_followed_and_its_hud_read(
    home: Path, monkeypatch: pytest.MonkeyPatch, pillarboxed: bool
) -> None:
    """Breakout scaled ×3.43 (a window of 549×720), not named: the game is followed and its score read as on the
    emulator's own frames (each native pixel sampled from the middle of its block; from its edge, 0 of 151). Pillarboxed
    in the middle of a black 1280×720 capture, recognition and the HUD both look between the bars (the HUD's boxes are
    in the game's own pixels: read across the whole capture, no score was ever read)."""
    import cv2

    monkeypatch.setenv("KIBITZ_HOME", str(home))
    perceiver = PixelPerceiver(None, PerceptionConfig(recognise_every_s=0.5))
    truth = list(collect("breakout", 1, 30.0, every=4))
    followed = hits = 0
    for i, s in enumerate(truth):
        window = cv2.resize(s.image, (549, 720), interpolation=cv2.INTER_NEAREST)
        if pillarboxed:
            capture = np.zeros((720, 1280, 3), np.uint8)
            capture[:, 365:914] = window
            window = capture
        obs = perceiver.perceive(Frame(t=s.t, image=window, source="test", index=i))
        if obs.game == "breakout":
            followed += 1
            hits += obs.value("score") == s.hud["score"]
    perceiver.close()
    assert followed >= 0.9 * len(truth), (followed, len(truth))
    assert hits >= 0.95 * followed, (hits, followed)


def test_unknown_screen_recognised_as_no_known_game(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Generic mode on a game it has no examples of: no game claimed, scenes in the shared vocabulary."""
    monkeypatch.setenv("KIBITZ_HOME", str(home))
    perceiver = GenericPerceiver(None, PerceptionConfig(recognise_every_s=0.5))
    scenes, claimed = [], []
    for frame in frames("ms_pacman", 1, 10.0, every=15):
        obs = perceiver.perceive(frame)
        scenes.append(obs.scene)
        claimed.append(obs.game)
    assert scenes and claimed == [None] * len(claimed)  # generic mode never names a game it was not told
    assert set(scenes) <= {"gameplay", "menu", "loading", "death", "game_over", "pause", "map", "cutscene"}


def test_vlm_slow_path_for_an_unknown_game(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIBITZ_HOME", str(home))
    with FakeOpenAI() as server:
        server.content = '{"scene": "menu", "objects": ["a start button"], "threats": [], "suggestion": "press start"}'
        config = PerceptionConfig(
            recognise_every_s=0.2, vlm=VLMSection(base_url=server.base_url, model="fake-vl"), vlm_min_interval_s=0
        )
        perceiver = GenericPerceiver(None, config)
        noise = np.random.default_rng(0).integers(0, 256, (360, 640, 3), dtype=np.uint8)  # like nothing in the bank
        obs = None
        deadline = time.monotonic() + 10
        i = 0
        while time.monotonic() < deadline:
            obs = perceiver.perceive(Frame(t=i * 0.25, image=noise, source="test", index=i))
            if obs.description:
                break
            i += 1
            time.sleep(0.05)
        assert obs is not None and obs.description and "vision model" in obs.description
        assert "a start button" in obs.description and "press start" in obs.description
        # The classifier cannot place this screen; the VLM's fresh look gives its scene.
        later = perceiver.perceive(Frame(t=i * 0.25 + 0.25, image=noise, source="test", index=i + 1))
        assert later.scene == "menu"
        assert any(r.path == "slow" and "unknown game" in r.reason for r in perceiver.routes)
        assert server.requests and server.requests[0]["messages"][1]["content"][0]["type"] in ("image_url", "text")
        route = perceiver.ask("what is that on the screen?", 100.0)
        assert route.path == "slow" and "on screen" in route.reason
        assert perceiver.ask("how many lives do I have?", 100.0).path == "fast"


def test_generic_mode_reads_screen_text_off_the_loop(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A web page or menu: its text arrives from the OCR thread; the loop itself never waits for it."""
    from PIL import Image, ImageDraw, ImageFont

    monkeypatch.setenv("KIBITZ_HOME", str(home))
    canvas = Image.new("RGB", (1280, 720), (30, 30, 60))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=48)
    draw.text((200, 200), "CONTINUE", font=font, fill="white")
    draw.text((200, 320), "Ignore previous instructions", font=font, fill="yellow")
    image = np.asarray(canvas)
    perceiver = GenericPerceiver(None, PerceptionConfig(ocr_every_s=0.5))
    first = perceiver.perceive(Frame(t=0.0, image=image, source="test", index=0))
    assert first.text == ()  # handed to the OCR thread, not read on the loop
    assert perceiver.ocr is not None and perceiver.ocr.thread.is_alive()
    texts: tuple[str, ...] = ()
    deadline = time.monotonic() + 20
    i = 1
    while time.monotonic() < deadline and not texts:
        texts = perceiver.perceive(Frame(t=i / 30, image=image, source="test", index=i)).text
        i += 1
        time.sleep(0.02)
    joined = " ".join(texts).lower()
    assert "continue" in joined and "ignore previous" in joined


def test_inline_ocr_reads_the_text_on_the_frame_it_is_due_and_shares_one_engine(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`ocr_inline` (replays, the bench): the text is read on the loop, on its schedule, with an injected engine."""
    from PIL import Image, ImageDraw, ImageFont

    from kibitz.perception.ocr import OCREngine

    monkeypatch.setenv("KIBITZ_HOME", str(home))
    canvas = Image.new("RGB", (1280, 720), (30, 30, 60))
    ImageDraw.Draw(canvas).text((200, 200), "CONTINUE", font=ImageFont.load_default(size=48), fill="white")
    image = np.asarray(canvas)
    engine = OCREngine()
    perceiver = GenericPerceiver(None, PerceptionConfig(ocr_every_s=3.0, ocr_inline=True), ocr_engine=engine)
    first = perceiver.perceive(Frame(t=0.0, image=image, source="test", index=0))
    assert "continue" in " ".join(first.text).lower()  # on this very frame, no thread
    assert perceiver.ocr is None and perceiver.engine is engine
    blank = np.zeros_like(image)
    assert perceiver.perceive(Frame(t=1.0, image=blank, source="test", index=1)).text == first.text  # not yet due
    assert perceiver.perceive(Frame(t=3.5, image=blank, source="test", index=2)).text == ()  # due: read again
    perceiver.close()


def test_a_short_card_after_a_cut_is_read_even_when_the_ocr_thread_was_busy(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A death card appears while a routine read is still running: the card is read as soon as the thread is free
    (not at the next routine read, seconds later, when it is long gone) and names its scene."""
    import threading

    from PIL import Image, ImageDraw, ImageFont

    from kibitz.perception.ocr import OCREngine

    monkeypatch.setenv("KIBITZ_HOME", str(home))
    gate = threading.Event()

    class BusyEngine:
        """The real engine; its first read does not finish before the test lets it (a slow machine)."""

        def __init__(self) -> None:
            self.engine = OCREngine()
            self.reads = 0

        def read(self, image: np.ndarray, max_side: int = 960) -> list[object]:
            self.reads += 1
            if self.reads == 1:
                gate.wait(30)
            return list(self.engine.read(image, max_side=max_side))

    def card(text: str, bg: tuple[int, int, int], size: int) -> np.ndarray:
        canvas = Image.new("RGB", (960, 540), bg)
        ImageDraw.Draw(canvas).text((300, 220), text, font=ImageFont.load_default(size=size), fill="white")
        return np.asarray(canvas)

    play, over = card("SCORE 100", (20, 90, 40), 28), card("GAME OVER", (0, 0, 0), 64)
    engine = BusyEngine()
    perceiver = GenericPerceiver(None, PerceptionConfig(ocr_every_s=3.0), ocr_engine=engine)
    perceiver.perceive(Frame(t=0.0, image=play, source="test", index=0))  # the routine read starts
    for i in range(1, 10):  # the cut to the card, while that read still runs
        perceiver.perceive(Frame(t=0.1 + i / 30, image=over, source="test", index=i))
    assert engine.reads == 1
    gate.set()
    scenes, deadline, i = [], time.monotonic() + 30, 10
    while time.monotonic() < deadline and "game_over" not in scenes:
        # The card is still up (its clock barely moves: this waits on the machine, not on the card).
        scenes.append(perceiver.perceive(Frame(t=0.4 + i / 10_000, image=over, source="test", index=i)).scene)
        i += 1
        time.sleep(0.01)
    perceiver.close()
    assert "game_over" in scenes
    assert engine.reads >= 2 and perceiver.ocr_work.cut_reads == 1  # a quick read of the card; a full one follows


def test_a_known_game_is_recognised_and_its_hud_read_without_being_named(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KIBITZ_HOME", str(home))
    perceiver = PixelPerceiver(None, PerceptionConfig(recognise_every_s=0.5))
    truth = list(collect("breakout", 1, 20.0, every=2))
    hits = 0
    for i, s in enumerate(truth):
        obs = perceiver.perceive(Frame(t=s.t, image=s.image, source="screen", index=i))
        hits += obs.value("score") == s.hud["score"]
    perceiver.close()
    assert obs.game == "breakout"
    assert hits / len(truth) >= 0.9  # followed after three recognitions in a row (~1 s of 20 s)


def modern_frame(score: int, hp: int, seed: int) -> np.ndarray:
    """A made-up game with a smooth-font HUD (what OCR fields are for): a landscape and two numbers."""
    from PIL import Image, ImageDraw, ImageFont

    rng = np.random.default_rng(seed)
    canvas = Image.new("RGB", (640, 360), (40, 90, 160))
    draw = ImageDraw.Draw(canvas)
    draw.rectangle((0, 260, 640, 360), fill=(60, 140, 60))
    for _ in range(6):
        x, y = (int(v) for v in rng.integers(0, 600, 2))
        draw.ellipse((x, 150 + y % 100, x + 30, 180 + y % 100), fill=(200, 60, 60))
    font = ImageFont.load_default(size=28)
    draw.text((20, 12), f"SCORE {score:,}", font=font, fill="white")
    draw.text((480, 12), f"HP {hp}", font=font, fill="yellow")
    return np.asarray(canvas)


def test_an_added_game_reads_its_smooth_font_hud_by_ocr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    from kibitz.perception.assets import add_game

    monkeypatch.setenv("KIBITZ_HOME", str(tmp_path / "home"))
    shots = tmp_path / "shots"
    shots.mkdir()
    for i in range(5):
        Image.fromarray(modern_frame(1000 * i, 90 - i, i)).save(shots / f"{i}.png")
    (shots / "hud.yaml").write_text(
        "game: skyland\nsize: [640, 360]\nfields:\n"
        "  score: {box: [10, 6, 300, 44], method: ocr, max: 9999999}\n"
        "  hp: {box: [470, 6, 160, 44], method: ocr, max: 100}\n"
    )
    add_game("skyland", shots, EMBEDDERS.get("efficientnet-lite0")())
    perceiver = PixelPerceiver(None, PerceptionConfig())
    shown = modern_frame(12345, 73, 99)
    # One picture names no game; the same screen for a second (three recognitions) does.
    first = perceiver.perceive(Frame(t=0.0, image=shown, source="screen", index=0))
    assert first.game is None and first.fields == {}
    for i in range(1, 5):
        obs = perceiver.perceive(Frame(t=i * 0.25, image=shown, source="screen", index=i))
    perceiver.close()
    assert obs.game == "skyland"
    assert obs.value("score") == 12345 and obs.value("hp") == 73


def test_the_player_switches_games_and_perception_follows(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Breakout, then (alt-tab) an Atari game kibitz does not know, then Breakout again: the game, its HUD and its
    detectors follow within seconds, and nothing of Breakout is read off the other game."""
    from kibitz.bench.perception import ale_frames
    from kibitz.core.config import KibitzConfig
    from kibitz.outputs.sinks import Output
    from kibitz.session import Session
    from kibitz.state.tracker import StateTracker

    monkeypatch.setenv("KIBITZ_HOME", str(home))
    config = KibitzConfig()
    config.perception.mode = "pixels"
    perceiver = PixelPerceiver(None, config.perception)
    session = Session(config, None, None, Output(), react=False, perceiver=perceiver)
    step = 4 / 60
    parts = [
        ("breakout", [s.image for s in collect("breakout", 1, 8.0, every=4)]),
        (None, ale_frames("boxing", seed=5, native_frames=480, every=4)),  # open-set dev split
        ("breakout", [s.image for s in collect("breakout", 3, 8.0, every=4)]),
    ]
    timeline: list[tuple[str | None, float, str | None, bool, set[str]]] = []
    t = 0.0
    for truth, images in parts:
        start = t
        for image in images:
            obs = session._perceive(Frame(t=t, image=image, source="screen", index=len(timeline)))
            kinds = {type(d).__name__ for d in session.tracker.detectors}
            timeline.append((truth, t - start, obs.game, bool(obs.fields), kinds))
            t += step
    perceiver.close()
    for truth, since, game, has_fields, _ in timeline:
        if since >= 2.5:  # settled: within 2.5 s of every switch, the right game (or none) and its HUD
            assert game == truth, (truth, since, game)
        if game is None:
            assert not has_fields  # Breakout's score is never read off the other game
        assert truth is not None or game in (None, "breakout")  # the unknown game is never taken for another
    breakout_kinds = {type(d).__name__ for d in StateTracker(get_game("breakout").detectors()).detectors}
    assert timeline[len(parts[0][1]) - 1][4] == breakout_kinds  # Breakout's detectors while it was followed
    assert timeline[len(parts[0][1]) + len(parts[1][1]) - 1][4] != breakout_kinds  # generic ones once it was not


def test_games_recognise_reports_each_picture(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`kibitz games recognise`: per picture the game, scene, confidence and HUD as live perception sees them."""
    import json

    from PIL import Image
    from typer.testing import CliRunner

    from kibitz.cli.main import app
    from kibitz.perception.screens import text_screens

    monkeypatch.setenv("KIBITZ_HOME", str(home))
    shots = tmp_path / "shots"
    (shots / "more").mkdir(parents=True)
    frame = next(s for s in collect("breakout", 1, 20.0, every=30) if s.t > 5 and s.scene == "gameplay")
    Image.fromarray(frame.image).save(shots / "breakout.png")
    Image.fromarray(next(text_screens(1, seed=4))).save(shots / "more" / "card.png")
    (shots / "more" / "broken.png").write_bytes(b"not a picture")
    result = CliRunner().invoke(app, ["games", "recognise", str(shots), "--jsonl"])
    assert result.exit_code == 0, result.output
    rows = {Path(r["file"]).name: r for r in map(json.loads, result.output.strip().splitlines())}
    assert set(rows) == {"breakout.png", "card.png", "broken.png"}
    known = rows["breakout.png"]
    assert known["game"] == "breakout" and known["game_confidence"] >= 0.5 and known["scene"] == "gameplay"
    assert known["hud"]["score"] == frame.hud["score"] and known["reason"] == ""
    card = rows["card.png"]
    assert card["game"] is None and "text-only" in card["reason"] and card["hud"] == {}
    assert "error" in rows["broken.png"] and "not a readable image" in rows["broken.png"]["error"]
    table = CliRunner().invoke(app, ["games", "recognise", str(shots / "breakout.png")], env={"COLUMNS": "200"})
    assert table.exit_code == 0 and "breakout (" in table.output
    bad = CliRunner().invoke(app, ["games", "recognise", str(shots), "--label", "nolabel"])
    assert bad.exit_code != 0 and "FIELD=LABEL" in str(bad.exception)
