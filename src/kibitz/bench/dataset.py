"""`kibitz bench build`: a dataset of frames, clips, questions and advice items from real games with their truth.

Every game is played by its recorder (a real emulator or game engine, a scripted player, a seed) and sampled:

- frames: single pictures spread over the scenes the run showed, with the scene and the HUD values on screen;
- clips: short stretches around true events (deaths, kills, captures...), stored at the recorder's clip rate,
  with every event's time inside the clip;
- questions: asked on some frames (and just after deaths: "what killed me?"), with exact answers;
- advice: "what should I do now?" on frames where the game has an answer key (Stockfish's top moves, a useful
  next Crafter achievement, the monsters that threaten the hero);
- support: for games kibitz has no assets for (the unseen split), five other pictures of the game, what a
  user would give `kibitz games add`.

The dataset is files (PNG frames, NPZ clips) plus `manifest.jsonl` (one item per line) and `dataset.json`;
the same seed gives the same bytes. No game data (ROMs, WADs) is ever written, only what the screen showed.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import shutil
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kibitz.bench.recorders import RECORDERS, SCORED_EVENTS, Recorder, TrueFrame
from kibitz.core.errors import KibitzError
from kibitz.core.records import RGBImage

MANIFEST = "manifest.jsonl"
META = "dataset.json"
MAX_CLIP_S = 24.0


@dataclass(frozen=True, slots=True)
class Plan:
    """How much of each game a dataset takes."""

    seconds: float
    """Game time played."""
    frames: int = 10
    clips: int = 3
    questions: int = 8
    advice: int = 6
    support: int = 5


@dataclass(frozen=True, slots=True)
class Size:
    name: str
    seconds: dict[str, float]
    frames: int
    clips: int
    questions: int
    advice: int
    support: int = 5

    def plan(self, game: str) -> Plan:
        return Plan(self.seconds[game], self.frames, self.clips, self.questions, self.advice, self.support)


DEFAULT_GAMES = ("smb", "breakout", "space_invaders", "pong", "doom", "crafter", "nethack", "chess")
"""Seven genres: platformer (SMB), Atari arcade (Breakout, Space Invaders, Pong), first-person shooter (Freedoom),
survival/crafting (Crafter), roguelike (NetHack), chess."""

SIZES: dict[str, Size] = {
    "full": Size(
        "full",
        {
            "smb": 150,
            "breakout": 90,
            "space_invaders": 90,
            "pong": 90,
            "doom": 120,
            "crafter": 150,
            "nethack": 300,
            "chess": 400,
        },
        frames=8,
        clips=3,
        questions=6,
        advice=4,
    ),
    "quick": Size(
        "quick",
        {
            "smb": 45,
            "breakout": 40,
            "space_invaders": 40,
            "pong": 30,
            "doom": 45,
            "crafter": 60,
            "nethack": 120,
            "chess": 120,
        },
        frames=2,
        clips=1,
        questions=2,
        advice=1,
        support=3,
    ),
}


def is_seen(game: str) -> bool:
    """A game kibitz ships assets for (HUD files, learnt prototypes); the others are the unseen split."""
    from kibitz.games import GAMES

    return game in GAMES


def png_bytes(image: RGBImage) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def read_png(path: Path) -> RGBImage:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    except (OSError, ValueError) as exc:
        raise KibitzError(
            f"The bench frame {path} is unreadable ({exc}); rebuild the dataset with `kibitz bench build`."
        ) from exc


def load_clip(path: Path) -> tuple[list[RGBImage], list[float]]:
    """The frames and their times (seconds from the clip start) of a stored clip."""
    try:
        with np.load(path) as data:
            frames, times = data["frames"], data["t"]
    except (OSError, KeyError, ValueError) as exc:
        raise KibitzError(
            f"The bench clip {path} is unreadable ({exc}); rebuild the dataset with `kibitz bench build`."
        ) from exc
    return [np.ascontiguousarray(f) for f in frames], [float(t) for t in times]


def clip_bytes(frames: list[RGBImage], times: list[float]) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, frames=np.stack(frames), t=np.array(times, dtype=np.float64))
    return buf.getvalue()


@dataclass
class _Clip:
    start: float
    end: float
    frames: list[RGBImage] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)


class _Writer:
    """Writes files under the dataset folder and remembers each file's hash for the manifest."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, rel: str, data: bytes) -> dict[str, str]:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return {"file": rel, "sha256": hashlib.sha256(data).hexdigest()}


def _pick_frames(candidates: list[TrueFrame], n: int, rng: random.Random) -> list[TrueFrame]:
    """n frames spread over the scenes: rare scenes first, then round-robin, random within a scene."""
    by_scene: dict[str, list[TrueFrame]] = {}
    for f in candidates:
        by_scene.setdefault(f.scene, []).append(f)
    pools = [rng.sample(v, len(v)) for _, v in sorted(by_scene.items(), key=lambda kv: (len(kv[1]), kv[0]))]
    picked: list[TrueFrame] = []
    while len(picked) < n and any(pools):
        for pool in pools:
            if pool and len(picked) < n:
                picked.append(pool.pop())
    return sorted(picked, key=lambda f: f.t)


SUPPORT_SEED_OFFSET = 10_000
"""An unseen game's support pictures are taken from its run `seed + SUPPORT_SEED_OFFSET`, never from the run its
items come from."""


def _sample_run(recorder: Recorder, seed: int, seconds: float, every: float) -> list[TrueFrame]:
    """One frame every `every` seconds of a run of the game."""
    picked: list[TrueFrame] = []
    next_at = every / 2
    for f in recorder.frames(seed, seconds):
        if f.t >= next_at:
            picked.append(f)
            next_at += every
    return picked


def record_game(
    recorder: Recorder,
    plan: Plan,
    seed: int,
    writer: _Writer,
    tick: Callable[[float], None] = lambda t: None,
) -> list[dict[str, Any]]:
    """Play one game and return its manifest items (files written through `writer`)."""
    game = recorder.game
    rng = random.Random(f"{seed}:{game}")
    step = max(1, round(recorder.fps / recorder.clip_fps))
    pre, post = max(6.0, 4 / recorder.clip_fps), max(4.0, 3 / recorder.clip_fps)
    every = plan.seconds / max(4 * (plan.frames + plan.advice + plan.support), 1)
    buffer: deque[tuple[float, RGBImage]] = deque()
    recent: deque[tuple[float, list[str]]] = deque()
    """The scored events of the last `pre` seconds: a clip that starts with those frames shows them (a death at the
    end of one clip is in the lead-in of a clip that starts soon after), so they are in its truth too."""
    clips: list[_Clip] = []
    current: _Clip | None = None
    candidates: list[TrueFrame] = []
    after_death: list[TrueFrame] = []
    due: float | None = None
    next_candidate = every / 2
    for index, f in enumerate(recorder.frames(seed, plan.seconds)):
        kept = index % step == 0
        scored = [e for e in f.events if e in SCORED_EVENTS]
        if current is not None:
            if kept:
                current.frames.append(f.image)
                current.times.append(f.t - current.start)
            current.events += [{"type": e, "t": round(f.t - current.start, 3)} for e in scored]
            if scored:
                current.end = min(max(current.end, f.t + post), current.start + MAX_CLIP_S)
            if f.t >= current.end:
                clips.append(current)
                current = None
        elif scored and len(clips) < plan.clips:
            start = buffer[0][0] if buffer else f.t
            current = _Clip(start, f.t + post)
            for t, image in buffer:
                current.frames.append(image)
                current.times.append(t - start)
            if kept:
                current.frames.append(f.image)
                current.times.append(f.t - start)
            current.events = [
                {"type": e, "t": round(t - start, 3)}
                for t, events in (*recent, (f.t, scored))
                if t >= start
                for e in events
            ]
        if kept:
            buffer.append((f.t, f.image))
            while buffer and buffer[0][0] < f.t - pre:
                buffer.popleft()
        if scored:
            recent.append((f.t, scored))
        while recent and recent[0][0] < f.t - pre:
            recent.popleft()
        if f.t >= next_candidate:
            candidates.append(f)
            next_candidate += every
        if "death" in f.events:
            due = f.t + 1.0
        if due is not None and f.t >= due:
            after_death.append(f)
            due = None
        if index % 64 == 0:
            tick(f.t)
    if current is not None and current.frames:
        clips.append(current)
    tick(plan.seconds)

    split = "seen" if is_seen(game) else "unseen"
    base = {"game": game, "split": split, "genre": recorder.genre, "title": recorder.title}
    labels = {k: list(v) for k, v in recorder.hud_labels.items()}
    """How the game labels its numbers on screen: a hint both stacks get (a player could tell kibitz as much). The
    game's, the same for every item: which fields a frame shows is truth, never a hint."""
    items: list[dict[str, Any]] = []
    frames = _pick_frames(candidates, plan.frames, rng)
    for n, f in enumerate(frames):
        items.append(
            {
                "id": f"{game}/frame/{n:03d}",
                "kind": "frame",
                **base,
                **writer.put(f"frames/{game}/{n:03d}.png", png_bytes(f.image)),
                "t": round(f.t, 3),
                "scene": f.scene,
                "hud": f.hud,
                "hud_alt": f.facts.get("hud_alt", {}),
                "labels": labels,
            }
        )
    for n, c in enumerate(clips):
        items.append(
            {
                "id": f"{game}/clip/{n:03d}",
                "kind": "clip",
                **base,
                **writer.put(f"clips/{game}/{n:03d}.npz", clip_bytes(c.frames, c.times)),
                "t0": round(c.start, 3),
                "duration": round(c.times[-1], 3) if c.times else 0.0,
                "fps": recorder.clip_fps,
                "events": c.events,
                "labels": labels,
            }
        )
    asked: list[tuple[TrueFrame, Any]] = []
    for f in after_death:
        asked += [(f, qa) for qa in recorder.questions(f, rng) if qa.kind != "count"]
    pool = [(f, qa) for f in rng.sample(candidates, len(candidates)) for qa in recorder.questions(f, rng)]
    asked = asked[: max(1, plan.questions // 3)] + pool
    seen_questions: set[tuple[float, str]] = set()
    n = 0
    for f, qa in asked:
        if n >= plan.questions or (f.t, qa.question) in seen_questions:
            continue
        seen_questions.add((f.t, qa.question))
        items.append(
            {
                "id": f"{game}/question/{n:03d}",
                "kind": "question",
                **base,
                **writer.put(f"questions/{game}/{n:03d}.png", png_bytes(f.image)),
                "t": round(f.t, 3),
                "question": qa.question,
                "answers": list(qa.answers),
                "options": list(qa.options),
                "qkind": qa.kind,
                "hud": f.hud,
                "labels": labels,
            }
        )
        n += 1
    n = 0
    for f in rng.sample(candidates, len(candidates)):
        if n >= plan.advice:
            break
        key = recorder.advice(f)
        if key is None or not key.good:
            continue
        items.append(
            {
                "id": f"{game}/advice/{n:03d}",
                "kind": "advice",
                **base,
                **writer.put(f"advice/{game}/{n:03d}.png", png_bytes(f.image)),
                "t": round(f.t, 3),
                "question": key.question,
                "advice_kind": key.kind,
                "good": list(key.good),
                "facts": key.facts,
                "hud": f.hud,
                "labels": labels,
            }
        )
        n += 1
    if split == "unseen":
        # The few pictures a player would show kibitz come from another run of the game than the items they help
        # score: the same frames (or the same run) would let recognition match an item against itself.
        spare = _sample_run(recorder, seed + SUPPORT_SEED_OFFSET, plan.seconds, every)
        for n, f in enumerate(_pick_frames(spare, plan.support, rng)):
            items.append(
                {
                    "id": f"{game}/support/{n:03d}",
                    "kind": "support",
                    **base,
                    **writer.put(f"support/{game}/{n:03d}.png", png_bytes(f.image)),
                    "scene": f.scene,
                }
            )
    return items


def fingerprint() -> str:
    """A hash of the code that decides what a dataset holds (recorders, the sampling, the games' adapters and HUD
    files): a dataset built by other code is stale and `kibitz bench run` rebuilds it."""
    from importlib import resources

    digest = hashlib.sha256()
    for package in ("kibitz.bench.recorders", "kibitz.games", "kibitz.games.data"):
        root = resources.files(package)
        for entry in sorted(root.iterdir(), key=lambda e: e.name):
            if entry.name.endswith((".py", ".yaml")):
                digest.update(entry.name.encode() + entry.read_bytes())
    digest.update(resources.files("kibitz.bench").joinpath("dataset.py").read_bytes())
    digest.update(resources.files("kibitz.bench").joinpath("prompts", "hud_shown.yaml").read_bytes())
    return digest.hexdigest()[:16]


def dataset_home() -> Path:
    from kibitz.perception.assets import vision_home

    return vision_home().parent / "bench" / "datasets"


def build(
    out: Path,
    seed: int = 0,
    size: str = "full",
    games: Iterable[str] = DEFAULT_GAMES,
    progress: Any = None,
) -> dict[str, Any]:
    """Build a dataset into `out` (replaced atomically) and return its metadata."""
    if size not in SIZES:
        raise KibitzError(f"Unknown bench size {size!r}; use one of: {', '.join(SIZES)}.")
    spec = SIZES[size]
    games = list(games)
    for game in games:
        if game not in RECORDERS:  # unknown ids fail before anything is played
            RECORDERS.get(game)
    tmp = out.with_name(out.name + ".building")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    writer = _Writer(tmp)
    items: list[dict[str, Any]] = []
    meta: dict[str, Any] = {"seed": seed, "size": size, "games": {}, "missing": {}, "fingerprint": fingerprint()}
    started = time.perf_counter()
    for game in games:
        plan = spec.plan(game) if game in spec.seconds else Plan(90.0)
        try:
            recorder = RECORDERS.get(game)()
        except ImportError as exc:
            reason = f"The bench recorder for {game} cannot be loaded ({exc}); reinstall kibitz with its bench extra."
            meta["missing"][game] = reason
            items.append({"id": f"{game}/missing", "kind": "missing", "game": game, "reason": reason})
            continue
        task = progress.add_task(f"recording {recorder.title}", total=plan.seconds) if progress else None

        def tick(t: float, task: Any = task, total: float = plan.seconds) -> None:
            if progress is not None:
                progress.update(task, completed=min(t, total))

        try:
            recorder.check_installed()
            game_start = time.perf_counter()
            got = record_game(recorder, plan, seed, writer, tick)
        except KibitzError as exc:
            meta["missing"][game] = exc.message
            items.append({"id": f"{game}/missing", "kind": "missing", "game": game, "reason": exc.message})
            continue
        finally:
            recorder.close()
        items += got
        counts: dict[str, int] = {}
        for item in got:
            counts[item["kind"]] = counts.get(item["kind"], 0) + 1
        meta["games"][game] = {
            "title": recorder.title,
            "genre": recorder.genre,
            "split": "seen" if is_seen(game) else "unseen",
            "seconds": plan.seconds,
            "runs": {"items": seed, **({} if is_seen(game) else {"support": seed + SUPPORT_SEED_OFFSET})},
            "items": counts,
            "build_s": round(time.perf_counter() - game_start, 1),
        }
    meta["build_s"] = round(time.perf_counter() - started, 1)
    (tmp / MANIFEST).write_text("".join(json.dumps(i, sort_keys=True) + "\n" for i in items))
    (tmp / META).write_text(json.dumps(meta, indent=2, sort_keys=True))
    if out.exists():
        shutil.rmtree(out)
    tmp.replace(out)
    return meta


@dataclass
class Dataset:
    """A built dataset: its folder, metadata and items."""

    root: Path
    meta: dict[str, Any]
    items: list[dict[str, Any]]
    fingerprint: str = ""
    """The manifest's hash: every item, its files' hashes and its truth (a rebuilt dataset that differs has another)."""

    def result_key(self, item: dict[str, Any], stack_identity: str) -> str:
        """What a stored result is valid for: this dataset, this item's content, this stack's configuration."""
        content = hashlib.sha256(json.dumps(item, sort_keys=True).encode()).hexdigest()[:16]
        return f"{self.fingerprint}:{content}:{stack_identity}"

    @classmethod
    def load(cls, root: Path) -> Dataset:
        manifest = root / MANIFEST
        if not manifest.exists():
            raise KibitzError(f"No bench dataset in {root}; build one with `kibitz bench build --out {root}`.")
        items = []
        for n, line in enumerate(manifest.read_text().splitlines(), 1):
            try:
                items.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise KibitzError(
                    f"Line {n} of {manifest} is not JSON; rebuild the dataset with `kibitz bench build`."
                ) from exc
        meta = json.loads((root / META).read_text()) if (root / META).exists() else {}
        return cls(root, meta, items, hashlib.sha256(manifest.read_bytes()).hexdigest()[:16])

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [i for i in self.items if i["kind"] == kind]

    def path(self, item: dict[str, Any]) -> Path:
        """The item's file, checked against the manifest's hash (a changed file is an error, not a score)."""
        path = self.root / item["file"]
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise KibitzError(f"The bench file {path} is missing ({exc.strerror}); rebuild the dataset.") from exc
        if hashlib.sha256(data).hexdigest() != item["sha256"]:
            raise KibitzError(f"The bench file {path} changed since the dataset was built; rebuild the dataset.")
        return path

    def image(self, item: dict[str, Any]) -> RGBImage:
        return read_png(self.path(item))

    def clip(self, item: dict[str, Any]) -> tuple[list[RGBImage], list[float]]:
        return load_clip(self.path(item))
