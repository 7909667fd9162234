"""Pixels-only perception measured against the emulators' true state.

Frames come from real emulated games (Super Mario Bros. and Atari 2600 games) with their RAM truth. The
glyph book and the prototypes are built from one seed's run (train) and scored on another seed's run
(test), so nothing is scored on the frames it was built from. Unseen games are scored leave-one-game-out:
scenes with prototypes from the other games only, game identity with at most 5 frames of the new game.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from itertools import islice
from typing import TYPE_CHECKING, Any

import numpy as np

from kibitz.core.records import Frame, Observation, RGBImage
from kibitz.perception.assets import (
    Sample,
    collect,
    learn_hud,
    pick_prototypes,
    scene_run_seconds,
    text_screen_bank,
)
from kibitz.perception.change import is_blank
from kibitz.perception.classifier import Embedder, PrototypeBank, Vectors, canonical_scene
from kibitz.perception.hud import HudReader, HudSmoother, hud_spec_path, load_hud_spec

if TYPE_CHECKING:
    from kibitz.bench.recorders import TrueFrame

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
    scenes_5shot: dict[str, list[int]] = field(default_factory=dict)
    """"game: true scene" → [frames whose scene is named right, frames where also the game added from 5 pictures is
    followed, frames]: the run watched by a real `PixelPerceiver` (`watch_run`: its pictures, the screen's text, a blank
    screen's loading), the game under a name with no HUD file or detectors. A game is followed only after several
    recognitions agree, so a title shown in a run's first second has its scene right at best, never its game."""
    prototypes: int = 0
    embed_ms: float = 0.0
    bank: PrototypeBank | None = None
    """The bank scored (the games' prototypes and the text-only screens)."""

    def mean(self, key: str) -> float:
        """Frame-weighted accuracy over all games."""
        num = sum(v[key] * v["frames"] for v in self.per_game.values())
        return num / sum(v["frames"] for v in self.per_game.values())


def follow_run(bank: PrototypeBank, vectors: Vectors, blanks: list[bool]) -> list[tuple[str | None, str]]:
    """A run's frames (in order, embedded) as live perception follows them: for each, the game followed and the scene
    named. As `PixelPerceiver` does: the scene is the followed game's, and the followed game's new looks are learnt
    (`LookLearner`) for the rest of the run."""
    from kibitz.perception.follow import GameFollower, LookLearner

    follower, learner = GameFollower(), LookLearner()
    out: list[tuple[str | None, str]] = []
    for vector, blank in zip(vectors, blanks, strict=True):
        rec = bank.classify(vector, scene_game=follower.game)
        followed = follower.update(rec, blank=blank)
        bank = learner.learn(bank, vector, rec, followed, blank=blank)
        out.append((followed, rec.scene))
    return out


def watch_run(
    embedder: Embedder, bank: PrototypeBank, samples: list[Sample], ocr_engine: Any = None
) -> tuple[list[Observation], Any]:
    """A run's frames as `kibitz watch` sees them when no game is named: a `PixelPerceiver` with this bank, each frame
    at its time, the screen's text read on the loop (`ocr_inline`: what is read must not depend on the machine's
    speed). The observations, and the OCR engine (to share with the next run)."""
    from kibitz.core.config import PerceptionConfig
    from kibitz.perception.pixels import PixelPerceiver

    perceiver = PixelPerceiver(
        None, PerceptionConfig(ocr_inline=True), embedder=embedder, bank=bank, ocr_engine=ocr_engine
    )
    try:
        out = [perceiver.perceive(Frame(s.t, s.image, "bench", i)) for i, s in enumerate(samples)]
        return out, perceiver.engine
    finally:
        perceiver.close()


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
        # Five pictures spread over another run, as a player would give `kibitz games add` (which skips blank ones).
        five_shot[g] = [
            run[i] for i in np.linspace(0, len(run) - 1, 5).round().astype(int) if not is_blank(run[i].image)
        ]
        test += list(collect(g, seed + 1, scene_run_seconds(g, test_s), every=23))
    if progress:
        progress(f"embedding {len(train) + len(test)} frames")
    t0 = time.perf_counter()
    bank = PrototypeBank.build(embedder, [s.image for s in train], [s.game for s in train], [s.scene for s in train])
    vectors = embed_all(embedder, [s.image for s in test])
    result = RecognitionResult(
        prototypes=len(bank), embed_ms=(time.perf_counter() - t0) * 1000 / (len(train) + len(test))
    )
    bank = result.bank = bank.merge(text_screen_bank(embedder))  # as live perception recognises
    ocr: Any = None
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
        blanks = [is_blank(test[i].image) for i in idx]
        seen_run = follow_run(bank, vectors[idx], blanks)
        five_run = follow_run(few, vectors[idx], blanks)
        if progress:
            progress(f"watching {g} as a game added from 5 pictures")
        added = f"added-{g}"  # a name with no HUD file, no glyphs, no detectors: what `games add` gives a player
        watched, ocr = watch_run(embedder, few.renamed(g, added), [test[i] for i in idx], ocr)
        for obs, truth in zip(watched, truth_scenes, strict=True):
            tally = result.scenes_5shot.setdefault(f"{g}: {canonical_scene(truth)}", [0, 0, 0])
            tally[0] += int(obs.scene == canonical_scene(truth))
            tally[1] += int(obs.game == added and obs.scene == canonical_scene(truth))
            tally[2] += 1
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
            "seen_followed": float(np.mean([f == g for f, _ in seen_run])),
            "unseen_followed_5shot": float(np.mean([f == g for f, _ in five_run])),
            "unknown_rate": float(np.mean([r.game is None for r in unseen])),
        }
    return result


FRAMINGS = ("as captured", "pillarboxed 16:9", "window on a dark desktop")
"""How a player's capture may frame a game: its own picture; scaled to 720 rows in the middle of a 1280×720 capture
with black bars either side; at twice its size in the middle of a dark 1280×720 desktop."""
DESKTOP = (14, 17, 24)
"""The dark desktop's colour (below `ContentBox.dark`: the box finds it as a bar)."""


def framed(image: RGBImage, framing: str) -> RGBImage:
    """A native frame as a capture framed this way (`FRAMINGS`) shows it."""
    import cv2

    if framing == FRAMINGS[0]:
        return image
    h, w = image.shape[:2]
    if framing == FRAMINGS[1]:
        size, canvas = (round(w * 720 / h), 720), np.zeros((720, 1280, 3), np.uint8)
    elif framing == FRAMINGS[2]:
        size, canvas = (2 * w, 2 * h), np.full((720, 1280, 3), DESKTOP, np.uint8)
    else:
        raise ValueError(f"unknown framing {framing!r}: one of {', '.join(FRAMINGS)}")
    scaled = cv2.resize(image, size, interpolation=cv2.INTER_NEAREST)
    top, left = (720 - size[1]) // 2, (1280 - size[0]) // 2
    canvas[top : top + size[1], left : left + size[0]] = scaled
    return canvas


def letterbox_bench(
    embedder: Embedder,
    games: tuple[str, ...],
    seconds: float = 60.0,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> dict[tuple[str, str], list[int]]:
    """Built-in games learnt from run `seed` (their prototypes and the text-only screens, as `kibitz games learn`
    gives), then run `seed + 1` of each watched by a real `PixelPerceiver` (no game named, the HUD fonts the user's
    `kibitz games learn` learnt) in each of the `FRAMINGS`. (game, framing) → [frames, frames the game was followed,
    frames whose scene was named right, HUD numbers on screen, of them read exactly (as `hud_bench` scores them)]."""
    from kibitz.perception.assets import text_screen_bank

    train, runs = [], {}
    for g in games:
        if progress:
            progress(f"playing {g}")
        train += pick_prototypes(list(collect(g, seed, scene_run_seconds(g, seconds), every=5)), 24)
        runs[g] = list(collect(g, seed + 1, scene_run_seconds(g, seconds), every=23))
    if progress:
        progress(f"embedding {len(train)} examples")
    bank = PrototypeBank.build(embedder, [s.image for s in train], [s.game for s in train], [s.scene for s in train])
    bank = bank.merge(text_screen_bank(embedder))
    out: dict[tuple[str, str], list[int]] = {}
    ocr: Any = None
    for g, run in runs.items():
        for framing in FRAMINGS:
            if progress:
                progress(f"watching {g}, {framing}")
            samples = [replace(s, image=framed(s.image, framing)) for s in run]
            watched, ocr = watch_run(embedder, bank, samples, ocr)
            shown, exact = hud_exact(g, run, watched)
            out[(g, framing)] = [
                len(run),
                sum(obs.game == g for obs in watched),
                sum(obs.scene == canonical_scene(s.scene) for obs, s in zip(watched, run, strict=True)),
                shown,
                exact,
            ]
    return out


def hud_exact(game: str, run: list[Sample], watched: list[Observation]) -> tuple[int, int]:
    """HUD numbers on screen in a run of a built-in game (its HUD file's fields on the scenes that show them, not on
    blank frames), and how many of them were read exactly: the frame's true value or the frame before's. (0, 0) for a
    game with no HUD file (Freeway)."""
    path = hud_spec_path(game)
    if path is None:
        return 0, 0
    spec = load_hud_spec(path)
    shown = exact = 0
    prev: dict[str, Any] = {}
    for s, obs in zip(run, watched, strict=True):
        blank = is_blank(s.image)
        for name, f in spec.fields.items():
            if blank or (f.scenes is not None and s.scene not in f.scenes) or s.hud.get(name) is None:
                continue
            shown += 1
            exact += name in obs.fields and obs.fields[name].value in {s.hud[name], prev.get(name, s.hud[name])}
        prev = s.hud
    return shown, exact


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


# --- open set: frames of games kibitz does not know ----------------------------------------------------------------

BENCH_UNSEEN = ("pong", "doom", "crafter", "nethack", "chess")
"""The bench's games kibitz ships no assets for."""
ALE_UNLOADABLE = ("combat", "joust", "maze_craze", "warlords")
"""Atari games ale-py 0.12.1 cannot load."""


def open_set_games(split: str) -> tuple[str, ...]:
    """Atari 2600 games kibitz has no assets for, split once by their sorted order (even: dev, odd: test) before
    anything was measured on them. Thresholds and rules were tuned on dev only; test is only ever scored."""
    from ale_py import roms

    from kibitz.games import GAMES

    names = [
        n
        for n in sorted(roms.get_all_rom_ids())
        if n not in GAMES and n not in NES_AND_ATARI and n != "pong" and n not in ALE_UNLOADABLE
    ]
    if split not in ("dev", "test"):
        raise ValueError(f"unknown open-set split {split!r} (dev or test)")
    return tuple(names[0::2] if split == "dev" else names[1::2])


def atari_stream(game: str, seed: int) -> Iterator[RGBImage]:
    """An Atari game played by random presses, one native frame at a time (a new game after each game over); each
    frame is the emulator's buffer until the next one is taken (copy what you keep)."""
    from ale_py import ALEInterface, LoggerMode, roms

    ALEInterface.setLoggerMode(LoggerMode.Error)
    ale = ALEInterface()
    ale.setInt("random_seed", seed)
    ale.setFloat("repeat_action_probability", 0.0)
    ale.loadROM(str(roms.get_rom_path(game)))
    actions = list(ale.getMinimalActionSet())
    rng = np.random.default_rng(seed)
    while True:
        ale.act(actions[int(rng.integers(len(actions)))])
        if ale.game_over():
            ale.reset_game()
        yield ale.getScreenRGB()


def ale_frames(game: str, seed: int, native_frames: int = 2400, every: int = 120) -> list[RGBImage]:
    """Every `every`-th frame of an Atari game played by random presses (a new game after each game over)."""
    frames = islice(atari_stream(game, seed), native_frames)
    return [f.copy() for i, f in enumerate(frames, start=1) if i % every == 0]


def recorder_frames(game: str, seed: int, seconds: float, count: int) -> list[RGBImage]:
    """`count` frames spread over a run of one of the bench's recorded games."""
    return [f.image for f in recorder_true_frames(game, seed, seconds, count)]


def recorder_true_frames(game: str, seed: int, seconds: float, count: int) -> list[TrueFrame]:
    """`count` frames spread over a run of one of the bench's recorded games, with their truth."""
    from kibitz.bench.recorders import RECORDERS

    recorder = RECORDERS.get(game)()
    recorder.check_installed()
    step = max(1, round(recorder.fps * seconds / count))
    try:
        return [f for i, f in enumerate(recorder.frames(seed, seconds)) if i % step == 0][:count]
    finally:
        recorder.close()  # chess's Stockfish runs until closed: left open, the process never exits


@dataclass
class OpenSetRow:
    """How often frames of one source were taken for a known game."""

    source: str
    frames: int = 0
    claimed: int = 0
    """Frames one picture at a time named as a known game."""
    sure: int = 0
    """...with confidence ≥ 0.9."""
    followed: int = 0
    """Frames at which live perception, watching the source's frames in order, followed a known game."""
    text_only: int = 0
    claims: Counter[str] = field(default_factory=Counter)


def score_open_set(bank: PrototypeBank, source: str, vectors: Vectors, blank: list[bool]) -> OpenSetRow:
    """One source's frames (in play order) through the bank and the follower, as live perception takes them."""
    row = OpenSetRow(source, frames=len(vectors))
    for v, b in zip(vectors, blank, strict=True):
        rec = bank.classify(v)
        if rec.game is not None and not b:
            row.claimed += 1
            row.sure += rec.game_confidence >= 0.9
            row.claims[rec.game] += 1
        row.text_only += rec.text_only
    row.followed = sum(game is not None for game, _ in follow_run(bank, vectors, blank))
    return row


def open_set_bench(
    embedder: Embedder,
    bank: PrototypeBank,
    split: str = "test",
    recorded: tuple[str, ...] | None = None,
    seed: int = 5,
    progress: Callable[[str], None] | None = None,
    limit: int | None = None,
) -> list[OpenSetRow]:
    """Frames of games not in `bank`: the Atari games of one open-set split (20 frames each, 2 s apart), the bench's
    own games without kibitz assets (40 frames each, recorder seed `seed`, not a dataset seed), and drawn text-only
    screens of a seed the bank's own were not drawn from. Nothing here is in the bank; every claim is a false one.
    The dev split plays no recorded game (`recorded` None): those are held out for scoring with the test split.
    `limit` takes only the first Atari games of the split (a quick check; figures use them all)."""
    from kibitz.perception.screens import text_screens

    sources: list[tuple[str, list[RGBImage]]] = []
    for game in open_set_games(split)[:limit]:
        if progress:
            progress(f"playing {game}")
        sources.append((f"atari:{game}", ale_frames(game, seed)))
    if recorded is None:
        recorded = BENCH_UNSEEN if split == "test" else ()
    for game in recorded:
        if progress:
            progress(f"recording {game}")
        sources.append((game, recorder_frames(game, seed, 120.0 if game != "chess" else 400.0, 40)))
    sources.append(("drawn text screens (seed 1)", list(text_screens(160, seed=1))))
    rows = []
    for name, images in sources:
        if progress:
            progress(f"recognising {name}")
        rows.append(score_open_set(bank, name, embed_all(embedder, images), [is_blank(im) for im in images]))
    return rows


LABEL_GAMES: dict[str, tuple[str, dict[str, str]]] = {
    "nethack": ("roguelike", {"dlvl": "depth"}),
    "doom": ("shooter", {}),
}
"""The bench's games with labelled status lines: game → (the built-in layout a player would pick, {truth field: the
layout's name for it})."""
LABEL_SEEDS = {"dev": 7, "test": 8}
"""Recorder seeds of the labelled-numbers part: dev to look at, test to score (the bench's items use seed 1, the
unseen games' support pictures 10001, the open set 5)."""


@dataclass
class LabelResult:
    game: str
    layout: str
    frames: int = 0
    shown: Counter[str] = field(default_factory=Counter)
    """Frames on which the truth shows each field."""
    exact: Counter[str] = field(default_factory=Counter)
    """...of them, frames on which the field was read exactly (a field not read counts as wrong)."""
    misses: list[dict[str, Any]] = field(default_factory=list)
    """The first wrong readings, for the report: truth and what was read."""

    @property
    def overall(self) -> float:
        return sum(self.exact.values()) / max(sum(self.shown.values()), 1)


def labels_bench(
    embedder: Embedder,
    game: str,
    split: str = "test",
    count: int = 40,
    seconds: float = 240.0,
    ocr_engine: Any = None,
    progress: Callable[[str], None] | None = None,
) -> LabelResult:
    """`count` frames of one of the bench's recorded games, each read as `kibitz watch --layout LAYOUT` reads a game
    it does not know (the screen's text, then the numbers by their labels, on a picture held for a moment), against
    the numbers the game's own state says are on screen."""
    from kibitz.core.config import PerceptionConfig
    from kibitz.perception.assets import recognition_bank
    from kibitz.perception.pixels import GenericPerceiver, perceive_still

    layout, names = LABEL_GAMES[game]
    bank = recognition_bank(embedder)
    config = PerceptionConfig(mode="generic", layout=layout, ocr_inline=True)
    result = LabelResult(game, layout)
    frames = recorder_true_frames(game, LABEL_SEEDS[split], seconds, count)
    for k, frame in enumerate(frames):
        if progress:
            progress(f"{game}: reading frame {k + 1} of {len(frames)}")
        perceiver = GenericPerceiver(None, config, embedder=embedder, bank=bank, ocr_engine=ocr_engine)
        try:
            read = perceive_still(perceiver, frame.image).values()
            ocr_engine = perceiver.engine
        finally:
            perceiver.close()
        result.frames += 1
        wrong = {}
        for name, value in frame.hud.items():
            if not isinstance(value, int) or isinstance(value, bool):
                continue
            mine = read.get(names.get(name, name))
            result.shown[name] += 1
            if mine == value:
                result.exact[name] += 1
            else:
                wrong[name] = (value, mine)
        if wrong and len(result.misses) < 20:
            result.misses.append({"frame": k, **{n: {"true": t, "read": r} for n, (t, r) in wrong.items()}})
    return result
