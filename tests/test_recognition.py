"""Game and scene recognition on real embeddings of real emulator frames, and the router's choices."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kibitz.core.errors import KibitzError
from kibitz.perception.assets import add_game, collect, load_bank, pick_prototypes
from kibitz.perception.classifier import EMBEDDERS, PrototypeBank, Recognition, prepare
from kibitz.perception.router import Router

GAMES = ("smb", "breakout", "seaquest", "ms_pacman")


@pytest.fixture(scope="module")
def embedder():  # type: ignore[no-untyped-def]
    pytest.importorskip("torch", reason="install kibitz[vision] for the EfficientNet embedder")
    return EMBEDDERS.get("efficientnet-lite0")()


def test_games_recognised_on_a_different_run(embedder) -> None:  # type: ignore[no-untyped-def]
    train, test = [], []
    for g in GAMES:
        train += pick_prototypes(list(collect(g, 0, 30.0, every=10)), 6)
        test += list(collect(g, 1, 30.0, every=97))
    bank = PrototypeBank.build(embedder, [s.image for s in train], [s.game for s in train], [s.scene for s in train])
    vectors = embedder.embed([s.image for s in test])
    hits = sum(bank.classify(v).game == s.game for v, s in zip(vectors, test, strict=True))
    assert hits / len(test) >= 0.95
    # Leave one game out: its frames are no longer confidently any other game's.
    without = bank.without("breakout")
    idx = [i for i, s in enumerate(test) if s.game == "breakout"]
    assert all(without.classify(vectors[i]).game != "breakout" for i in idx)


def test_add_a_game_from_screenshots(embedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("KIBITZ_HOME", str(tmp_path / "home"))
    shots = tmp_path / "shots"
    (shots / "menu").mkdir(parents=True)
    frames = list(collect("seaquest", 0, 20.0, every=240))
    for i, s in enumerate(frames):
        Image.fromarray(s.image).save(shots / f"play{i}.png")
    Image.fromarray(np.zeros((210, 160, 3), np.uint8)).save(shots / "menu" / "m.png")
    (shots / "broken.png").write_bytes(b"not an image")
    (shots / "credits").mkdir()
    Image.fromarray(frames[0].image).save(shots / "credits" / "c.png")
    used, problems = add_game("my_sea", shots, embedder)
    assert used == len(frames) + 1
    assert any("broken.png" in p for p in problems) and any("credits" in p for p in problems)
    bank = load_bank(embedder.name)
    assert bank is not None and set(bank.games.tolist()) == {"my_sea"}
    probe = next(s for s in collect("seaquest", 1, 20.0, every=120) if s.t > 5)
    assert bank.classify(embedder.embed([probe.image])[0]).game == "my_sea"
    with pytest.raises(KibitzError):
        add_game("smb", shots, embedder)  # built-in names are taken
    with pytest.raises(KibitzError):
        add_game("x", tmp_path / "nope", embedder)


@pytest.mark.parametrize(
    "image",
    [np.zeros((0, 0, 3), np.uint8), np.zeros((4, 4, 3), np.uint8), np.zeros((5,), np.uint8)],
)
def test_unusable_frames_are_refused_with_a_reason(image: np.ndarray) -> None:
    with pytest.raises(ValueError):
        prepare(image)


def test_odd_frames_are_converted() -> None:
    assert prepare(np.zeros((20, 30), np.uint8)).shape == (20, 30, 3)
    assert prepare(np.zeros((20, 30, 4), np.uint8)).shape == (20, 30, 3)
    assert prepare(np.ones((20, 30, 3), np.float32)).max() == 255


def test_thumbnail_embedder_needs_nothing_extra() -> None:
    emb = EMBEDDERS.get("thumbnail")()
    a = next(iter(collect("breakout", 0, 2.0, every=60))).image
    v = emb.embed([a, a])
    assert v.shape == (2, emb.dim) and np.allclose(np.linalg.norm(v, axis=1), 1.0)


def rec(game: str | None, scene_conf: float = 0.9) -> Recognition:
    return Recognition(game, 1.0 if game else 0.0, "gameplay", scene_conf, 0.4 if game is None else 0.9)


def test_router_reasons() -> None:
    assert Router(vlm_available=False).decide(0, rec(None)).reason == "no VLM configured"
    r = Router(vlm_available=True, min_interval_s=10)
    first = r.decide(0.0, rec(None))
    assert first.path == "slow" and "unknown game" in first.reason
    assert r.decide(1.0, rec(None)).path == "fast"  # looked a second ago
    assert r.decide(1.0, rec("smb"), question="what is that thing on the left of the screen?").path == "slow"
    assert r.decide(1.0, rec("smb"), question="how many lives do I have?").path == "fast"
    assert r.decide(20.0, rec("smb", scene_conf=0.3)).path == "slow"
    assert r.decide(40.0, rec("smb")).reason == "known game and scene"
    slow = Router(vlm_available=True, budget_s=1.0, expected_latency_s=0.5)
    for _ in range(5):
        slow.observe_latency(4.0)  # the server turned out slow
    assert "over the 1.0 s budget" in slow.decide(0.0, rec(None)).reason
