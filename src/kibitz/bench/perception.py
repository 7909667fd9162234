"""Pixels-only perception measured against the emulators' true state.

Frames come from real emulated games (Super Mario Bros. and Atari 2600 games) with their RAM truth. The
glyph book and the prototypes are built from one seed's run (train) and scored on another seed's run
(test), so nothing is scored on the frames it was built from. Unseen games are scored leave-one-game-out:
scenes with prototypes from the other games only, game identity with at most 5 frames of the new game.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kibitz.core.records import RGBImage
from kibitz.perception.assets import Sample, collect, learn_hud, pick_prototypes, scene_run_seconds
from kibitz.perception.change import is_blank
from kibitz.perception.classifier import Embedder, PrototypeBank, Vectors, canonical_scene
from kibitz.perception.hud import HudReader, HudSmoother, hud_spec_path, load_hud_spec

NES_AND_ATARI = ("smb", "breakout", "space_invaders", "seaquest", "ms_pacman", "freeway", "riverraid", "asteroids")


@dataclass
class HudResult:
    game: str
    frames: int = 0
    exact: Counter[str] = field(default_factory=Counter)
    raw_exact: Counter[str] = field(default_factory=Counter)
    shown: Counter[str] = field(default_factory=Counter)
    glyphs: int = 0
    learn_frames: int = 0
    ms: list[float] = field(default_factory=list)

    def rate(self, name: str) -> float:
        return self.exact[name] / self.shown[name] if self.shown[name] else float("nan")

    @property
    def overall(self) -> float:
        total = sum(self.shown.values())
        return sum(self.exact.values()) / total if total else float("nan")


def hud_bench(game_id: str, train_s: float, test_s: float, seed: int = 0) -> HudResult:
    """Learn the glyphs on one run, read every frame of another, compare with RAM.

    A reading counts as exact when it equals the true value of this frame or of the one before: the
    consoles draw the HUD from the previous frame's memory. Fields are scored on frames whose scene shows
    them and that are not blank.
    """
    path = hud_spec_path(game_id)
    if path is None:
        raise ValueError(f"{game_id} has no HUD file")
    spec = load_hud_spec(path)
    # Two training runs (seeds seed and seed + 2) so more of the font's digits turn up; the test run is seed + 1.
    book, report = learn_hud(game_id, train_s, seeds=(seed, seed + 2))
    reader, smoother = HudReader(spec, book), HudSmoother(spec)
    result = HudResult(game_id, glyphs=report.glyphs, learn_frames=report.samples)
    prev: dict[str, Any] = {}
    for s in collect(game_id, seed + 1, test_s):
        t0 = time.perf_counter()
        raw = reader.read(s.image)
        values = smoother.update(s.t, raw)
        result.ms.append((time.perf_counter() - t0) * 1000)
        result.frames += 1
        blank = is_blank(s.image)
        for name, f in spec.fields.items():
            if blank or (f.scenes is not None and s.scene not in f.scenes) or s.hud.get(name) is None:
                continue  # not on screen (a black frame shows no HUD): nothing to read
            truth = {s.hud[name], prev.get(name, s.hud[name])}
            result.shown[name] += 1
            result.exact[name] += name in values and values[name].value in truth
            result.raw_exact[name] += raw[name].value in truth
        prev = s.hud
    return result


def embed_all(embedder: Embedder, images: list[RGBImage], batch: int = 16) -> Vectors:
    return np.concatenate([embedder.embed(images[i : i + batch]) for i in range(0, len(images), batch)])


@dataclass
class RecognitionResult:
    per_game: dict[str, dict[str, float]] = field(default_factory=dict)
    """game → seen_game, seen_scene, unseen_scene, unseen_game_5shot, unknown_rate, frames."""
    confusions: Counter[str] = field(default_factory=Counter)
    prototypes: int = 0
    embed_ms: float = 0.0

    def mean(self, key: str) -> float:
        """Frame-weighted accuracy over all games."""
        num = sum(v[key] * v["frames"] for v in self.per_game.values())
        return num / sum(v["frames"] for v in self.per_game.values())


def recognition_bench(
    embedder: Embedder,
    games: tuple[str, ...],
    train_s: float,
    test_s: float,
    per_scene: int = 24,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> RecognitionResult:
    train: list[Sample] = []
    test: list[Sample] = []
    five_shot: dict[str, list[Sample]] = {}
    for g in games:
        if progress:
            progress(f"playing {g}")
        run = list(collect(g, seed, scene_run_seconds(g, train_s), every=5))
        train += pick_prototypes(run, per_scene)
        five_shot[g] = [run[i] for i in np.linspace(0, len(run) - 1, 5).round().astype(int)]
        test += list(collect(g, seed + 1, scene_run_seconds(g, test_s), every=23))
    if progress:
        progress(f"embedding {len(train) + len(test)} frames")
    t0 = time.perf_counter()
    bank = PrototypeBank.build(embedder, [s.image for s in train], [s.game for s in train], [s.scene for s in train])
    vectors = embed_all(embedder, [s.image for s in test])
    result = RecognitionResult(
        prototypes=len(bank), embed_ms=(time.perf_counter() - t0) * 1000 / (len(train) + len(test))
    )
    test_games = np.array([s.game for s in test])
    for g in games:
        idx = np.where(test_games == g)[0]
        seen = [bank.classify(vectors[i]) for i in idx]
        others = bank.without(g)
        unseen = [others.classify(vectors[i]) for i in idx]
        shots = five_shot[g]
        few = others.merge(
            PrototypeBank.build(embedder, [s.image for s in shots], [g] * len(shots), [s.scene for s in shots])
        )
        five = [few.classify(vectors[i]) for i in idx]
        truth_scenes = [test[i].scene for i in idx]
        for r, sc in zip(seen, truth_scenes, strict=True):
            if r.scene != sc:
                result.confusions[f"{g}: {sc} → {r.scene}"] += 1
        result.per_game[g] = {
            "frames": float(len(idx)),
            "seen_game": float(np.mean([r.game == g for r in seen])),
            "seen_scene": float(np.mean([r.scene == sc for r, sc in zip(seen, truth_scenes, strict=True)])),
            "unseen_scene": float(
                np.mean([r.scene == canonical_scene(sc) for r, sc in zip(unseen, truth_scenes, strict=True)])
            ),
            "unseen_game_5shot": float(np.mean([r.game == g for r in five])),
            "unknown_rate": float(np.mean([r.game is None for r in unseen])),
        }
    return result


@dataclass
class CostResult:
    name: str
    per_frame_ms: float
    """Average over a stream at 60 frames/s with the configured schedules (what the loop pays)."""
    worst_frame_ms: float
    """A frame that also runs every scheduled model on the loop thread (recognition; OCR only hands over)."""
    parts_ms: dict[str, float] = field(default_factory=dict)

    @property
    def fps(self) -> float:
        return 1000.0 / self.per_frame_ms if self.per_frame_ms else float("inf")


def _median_ms(fn: Callable[[], object], n: int) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return float(np.median(times))


def cost_bench(embedder: Embedder, recognise_every_s: float = 0.5, ocr_every_s: float = 3.0) -> list[CostResult]:
    """One-thread cost of pixel perception on a NES frame with a known HUD, and on a 720p frame (generic)."""
    from kibitz.perception.change import ChangeDetector
    from kibitz.perception.ocr import OCREngine

    nes = next(s for s in collect("smb", 1, 20.0, every=60) if s.scene == "gameplay" and s.t > 8).image
    spec = load_hud_spec(hud_spec_path("smb"))  # type: ignore[arg-type]
    book, _ = learn_hud("smb", 30.0, seeds=(0,))
    reader, smoother, change = HudReader(spec, book), HudSmoother(spec), ChangeDetector()
    parts = {
        "change": _median_ms(lambda: change.update(nes, 0.0), 50),
        "hud": _median_ms(lambda: smoother.update(0.0, reader.read(nes)), 50),
        "recognition": _median_ms(lambda: embedder.embed([nes]), 10),
    }
    frames_per_recognition = recognise_every_s * 60
    nes_cost = CostResult(
        "NES frame, known HUD (pixels)",
        parts["change"] + parts["hud"] + parts["recognition"] / frames_per_recognition,
        parts["change"] + parts["hud"] + parts["recognition"],
        parts,
    )
    from PIL import Image

    hd = np.asarray(Image.fromarray(nes).resize((1280, 720), Image.Resampling.NEAREST))
    ocr = OCREngine(threads=1)
    hd_parts = {
        "change": _median_ms(lambda: change.update(hd, 0.0), 30),
        "recognition": _median_ms(lambda: embedder.embed([hd]), 10),
        "ocr hand-over": _median_ms(lambda: hd.copy(), 30),
        "ocr (own thread)": _median_ms(lambda: ocr.read(hd, max_side=960), 5),
    }
    loop_parts = hd_parts["change"] + hd_parts["ocr hand-over"] / (ocr_every_s * 60)
    hd_cost = CostResult(
        "720p frame, generic mode",
        loop_parts + hd_parts["recognition"] / frames_per_recognition,
        hd_parts["change"] + hd_parts["recognition"] + hd_parts["ocr hand-over"],
        hd_parts,
    )
    return [nes_cost, hd_cost]
