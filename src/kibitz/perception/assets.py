"""What pixel perception learns and keeps on the user's machine: glyph books and game/scene prototypes.

Everything lives under `$KIBITZ_HOME/vision/` (default ~/.cache/kibitz/vision):
  glyphs/<game>.npz        the HUD font of a game, learnt from frames whose true values are known
  prototypes/<game>.npz    example embeddings of a game's scenes

Built-in games learn both from their emulators (`kibitz games learn`); any other game is added from a
folder of screenshots (`kibitz games add NAME FOLDER`, one sub-folder per scene, or loose files for
gameplay). Nothing here is derived from data kibitz ships: it is all made on the user's machine.
"""

from __future__ import annotations

import json
import logging
import re
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from kibitz.core.errors import KibitzError
from kibitz.core.records import RGBImage
from kibitz.games.base import GAMES, get_game
from kibitz.models.store import cache_dir
from kibitz.perception.change import is_blank
from kibitz.perception.classifier import SCENES, Embedder, PrototypeBank, canonical_scene
from kibitz.perception.hud import GlyphBook, LearnReport, hud_spec_path, learn_glyphs, load_hud_spec
from kibitz.perception.screens import TEXT_SCREEN, text_screens
from kibitz.sources.emulator import EmulatorSource

log = logging.getLogger("kibitz.assets")

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}
Progress = Callable[[str], None]


def vision_home() -> Path:
    return cache_dir() / "vision"


def glyph_path(game_id: str) -> Path:
    return vision_home() / "glyphs" / f"{game_id}.npz"


def user_hud_dir() -> Path:
    """HUD files of games added with `kibitz games add` (copied from their screenshot folder)."""
    return vision_home() / "hud"


def labels_path(game_id: str) -> Path:
    """An added game's labelled numbers (the labels.yaml of its `kibitz games add` folder)."""
    return user_hud_dir() / f"{game_id}.labels.yaml"


def parse_labels_file(path: Path) -> dict[str, list[str]]:
    """A labels.yaml (`layout: shooter` and/or `labels: {field: [LABEL, ...]}`) as the labels to read, or a
    KibitzError saying what is wrong with it."""
    from pydantic import ValidationError

    from kibitz.core.config import PerceptionConfig

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise KibitzError(f"{path} is not readable YAML ({exc}).") from exc
    if not isinstance(data, dict) or not set(data) <= {"layout", "labels"} or not data:
        raise KibitzError(f"{path} must hold `layout: NAME` and/or `labels: {{field: [LABEL, ...]}}`.")
    try:
        config = PerceptionConfig(layout=data.get("layout"), labels=data.get("labels") or {})
    except ValidationError as exc:
        raise KibitzError(f"{path}: {exc.errors()[0]['msg']}.") from exc
    return config.label_specs()


def game_labels(game_id: str) -> dict[str, list[str]]:
    """The labelled numbers an added game brought (empty when it brought none, or its file went bad: logged)."""
    path = labels_path(game_id)
    if not path.is_file():
        return {}
    try:
        return parse_labels_file(path)
    except KibitzError as exc:
        log.warning("%s Its numbers are not read; fix the file or run `kibitz games add %s` again.", exc, game_id)
        return {}


def prototype_path(game_id: str) -> Path:
    return vision_home() / "prototypes" / f"{game_id}.npz"


GLYPH_SEEDS = (0, 2)
"""The emulator runs a built-in game's HUD font is learnt from (run 1 and 3+ are left for scoring)."""
PROTOTYPE_SEEDS = (0,)
"""The emulator runs a built-in game's scene prototypes are learnt from."""


def origins_path() -> Path:
    return vision_home() / "origins.json"


def origins() -> dict[str, dict[str, Any]]:
    """Where each learnt game came from: {"source": "emulator", "seeds": [...]} for a built-in game, {"source":
    "screenshots", "folder": ...} for one added by the player. Games learnt before this was kept are built-in games
    learnt from the seeds above."""
    try:
        data: dict[str, dict[str, Any]] = json.loads(origins_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = {}
    folder = vision_home() / "prototypes"
    for path in sorted(folder.glob("*.npz")) if folder.is_dir() else []:
        if path.stem not in data and path.stem in GAMES:
            data[path.stem] = {"source": "emulator", "seeds": sorted({*GLYPH_SEEDS, *PROTOTYPE_SEEDS})}
    return data


def record_origin(game_id: str, origin: dict[str, Any] | None) -> None:
    """Keep (or with None, drop) a game's origin; written atomically."""
    known = {k: v for k, v in origins().items() if prototype_path(k).is_file() or k == game_id}
    if origin is None:
        known.pop(game_id, None)
    else:
        known[game_id] = origin
    path = origins_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(known, indent=1, sort_keys=True), encoding="utf-8")
    tmp.replace(path)


@dataclass(frozen=True, slots=True)
class Sample:
    """One emulated frame with its truth: the scene as the screen shows it, and the HUD values."""

    image: RGBImage
    game: str
    scene: str
    hud: dict[str, object]
    t: float


def collect(game_id: str, seed: int, seconds: float, every: int = 1) -> Iterator[Sample]:
    """Every `every`-th native frame of a built-in game played by its built-in player, with its truth.

    Frames after an Atari game has ended are left out: the 2600 just freezes its last picture there.
    """
    game = get_game(game_id)
    source = EmulatorSource(game, fps=60.0, realtime=False, seed=seed)
    source.hold_frames = 0
    try:
        for frame in source.frames():
            if frame.t > seconds:
                return
            if frame.index % every or source.env.finished or frame.state is None:
                continue
            yield Sample(
                frame.image, game_id, game.visual_scene(frame.state, frame.image), game.hud(frame.state), frame.t
            )
    finally:
        source.close()


def pick_prototypes(samples: list[Sample], per_scene: int) -> list[Sample]:
    """Up to per_scene frames of each (game, scene), spread over the run."""
    groups: dict[tuple[str, str], list[Sample]] = defaultdict(list)
    for s in samples:
        groups[(s.game, s.scene)].append(s)
    out: list[Sample] = []
    for items in groups.values():
        idx = np.linspace(0, len(items) - 1, min(per_scene, len(items))).round().astype(int)
        out.extend(items[i] for i in sorted(set(idx.tolist())))
    return out


def learn_hud(
    game_id: str, seconds: float = 240.0, seeds: tuple[int, ...] = GLYPH_SEEDS
) -> tuple[GlyphBook, LearnReport]:
    """Learn a built-in game's HUD glyphs from its emulator runs (seed 1 is left for testing)."""
    path = hud_spec_path(game_id)
    if path is None:
        raise KibitzError(f"{game_id} has no HUD file; add games/data/{game_id}.hud.yaml to read its HUD.")
    spec = load_hud_spec(path)
    samples = (
        (s.image, s.hud, s.scene) for seed in seeds for s in collect(game_id, seed, seconds / len(seeds), every=5)
    )
    return learn_glyphs(spec, samples)


def scene_run_seconds(game_id: str, seconds: float) -> float:
    """How long to play a game to see its scenes: SMB's scenes other than gameplay need a longer run."""
    return seconds * (4.0 if game_id == "smb" else 1.0)


def learn_prototypes(embedder: Embedder, game_id: str, seconds: float = 60.0, per_scene: int = 24) -> PrototypeBank:
    """Scene prototypes of a built-in game from its emulator run (PROTOTYPE_SEEDS)."""
    runs = [s for seed in PROTOTYPE_SEEDS for s in collect(game_id, seed, scene_run_seconds(game_id, seconds), every=5)]
    picked = pick_prototypes(runs, per_scene)
    return PrototypeBank.build(embedder, [s.image for s in picked], [game_id] * len(picked), [s.scene for s in picked])


def learn_builtin(embedder: Embedder, game_ids: list[str], progress: Progress | None = None) -> dict[str, str]:
    """Learn glyphs and prototypes for built-in games and save them; returns a line of outcome per game."""
    done: dict[str, str] = {}
    for game_id in game_ids:
        get_game(game_id).check_installed()
        parts = []
        if hud_spec_path(game_id) is not None:
            if progress:
                progress(f"{game_id}: learning the HUD font")
            book, report = learn_hud(game_id)
            book.save(glyph_path(game_id))
            parts.append(f"{report.glyphs} glyphs from {report.samples} frames")
        if progress:
            progress(f"{game_id}: building scene prototypes")
        bank = learn_prototypes(embedder, game_id)
        bank.save(prototype_path(game_id))
        record_origin(game_id, {"source": "emulator", "seeds": sorted({*GLYPH_SEEDS, *PROTOTYPE_SEEDS})})
        scenes = sorted(set(bank.scenes.tolist()))
        parts.append(f"{len(bank)} prototypes ({', '.join(scenes)})")
        done[game_id] = "; ".join(parts)
    return done


def read_image(path: Path) -> RGBImage:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, UnidentifiedImageError) as exc:
        raise ValueError(f"{path.name} is not a readable image ({exc})") from exc


def check_game_name(name: str) -> None:
    """A game's name becomes a file name: letters, digits, - and _ only (no "../" or "/" can be smuggled in)."""
    if re.fullmatch(r"[\w-]+", name) is None:
        raise KibitzError(f"Game names use letters, digits, - and _ only; {name!r} does not.")


def add_game(name: str, folder: Path, embedder: Embedder, progress: Progress | None = None) -> tuple[int, list[str]]:
    """Prototypes for a new game from a folder of screenshots; returns (frames used, problems skipped).

    Sub-folders named after scenes (gameplay, menu, pause, death, ...) label their frames; loose images are
    gameplay. Unreadable files are skipped with a reason, never fatal. A `hud.yaml` in the folder (fields
    with `method: ocr`) makes kibitz read the game's HUD numbers too, and a `labels.yaml` (`layout: roguelike` and/or
    `labels: {hp: [HP]}`) reads numbers by their on-screen labels while the game is followed.
    """
    check_game_name(name)
    if name in GAMES:
        raise KibitzError(f"{name!r} is a built-in game; learn it with `kibitz games learn {name}` instead.")
    if not folder.is_dir():
        raise KibitzError(f"{folder} is not a folder; give a folder of screenshots (sub-folders per scene).")
    labels = folder / "labels.yaml"
    if labels.is_file():
        parse_labels_file(labels)  # a bad file stops here, before anything is written
    images: list[RGBImage] = []
    scenes: list[str] = []
    problems: list[str] = []
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    for path in files:
        scene = canonical_scene(path.parent.name.lower()) if path.parent != folder else "gameplay"
        if scene not in SCENES:
            problems.append(f"{path.relative_to(folder)}: unknown scene folder {path.parent.name!r}")
            continue
        try:
            image = read_image(path)
        except ValueError as exc:
            problems.append(str(exc))
            continue
        if is_blank(image):
            problems.append(f"{path.relative_to(folder)}: a blank (near one-colour) picture shows nothing of the game")
            continue
        images.append(image)
        scenes.append(scene)
        if progress:
            progress(f"read {path.name}")
    if not images:
        raise KibitzError(f"No usable screenshots in {folder} (.png or .jpg, optionally in scene sub-folders).")
    bank = PrototypeBank.build(embedder, images, [name] * len(images), scenes)
    hud = folder / "hud.yaml"
    if hud.is_file():  # the HUD's boxes; smooth fonts are read by OCR, no learning needed
        spec = load_hud_spec(hud)
        if any(f.method == "glyphs" for f in spec.fields.values()):
            raise KibitzError(
                f"{hud}: added games read their HUD with `method: ocr` (glyphs are learnt from emulators)."
            )
        user_hud_dir().mkdir(parents=True, exist_ok=True)
        (user_hud_dir() / f"{name}.hud.yaml").write_text(hud.read_text(encoding="utf-8"), encoding="utf-8")
    if labels.is_file():  # the numbers to read by their labels: a built-in layout and/or the game's own
        user_hud_dir().mkdir(parents=True, exist_ok=True)
        labels_path(name).write_text(labels.read_text(encoding="utf-8"), encoding="utf-8")
    bank.save(prototype_path(name))
    record_origin(name, {"source": "screenshots", "folder": str(folder.resolve()), "pictures": len(images)})
    return len(images), problems


def load_bank(embedder_name: str) -> PrototypeBank | None:
    """Every game's prototypes that were made with this embedder, or None when there are none yet."""
    folder = vision_home() / "prototypes"
    bank: PrototypeBank | None = None
    for path in sorted(folder.glob("*.npz")):
        part = PrototypeBank.load(path)
        if part.embedder != embedder_name:
            continue
        bank = part if bank is None else bank.merge(part)
    return bank


TEXT_SCREENS = 160
"""Text-only screens drawn for the bank (seed 0): ~5 s of embedding once per embedder, then cached."""


def text_screen_path(embedder_name: str) -> Path:
    return vision_home() / f"text-screens.{embedder_name}.npz"


def text_screen_bank(embedder: Embedder) -> PrototypeBank:
    """The embeddings of kibitz's drawn text-only screens (made on first use, then read from the cache)."""
    path = text_screen_path(embedder.name)
    if path.is_file():
        try:
            bank = PrototypeBank.load(path)
            if bank.embedder == embedder.name and len(bank) == TEXT_SCREENS:
                return bank
        except KibitzError:
            pass  # unreadable: draw them again
    images = list(text_screens(TEXT_SCREENS, seed=0))
    bank = PrototypeBank.build(embedder, images, [TEXT_SCREEN] * len(images), ["text"] * len(images))
    bank.save(path)
    return bank


def recognition_bank(embedder: Embedder) -> PrototypeBank | None:
    """What live perception recognises with: every learnt game's prototypes and the text-only screens (None when no
    game is learnt yet)."""
    bank = load_bank(embedder.name)
    return None if bank is None else bank.merge(text_screen_bank(embedder))


def load_glyphs(game_id: str) -> GlyphBook | None:
    path = glyph_path(game_id)
    return GlyphBook.load(path) if path.is_file() else None


def known_games() -> list[str]:
    """Games with prototypes on this machine (built-in and added)."""
    return sorted(p.stem for p in (vision_home() / "prototypes").glob("*.npz"))
