"""One user's memory vectors in RAM, for the embedded store's search.

- Exact below `TWO_STAGE_FROM` memories: one float32 matrix-vector product (100,000 × 384 takes ~5 ms on one
  core, memory-bound).
- From `TWO_STAGE_FROM` on, two stages: similarities in a 96-dimensional PCA projection of the vectors (a
  quarter of the bytes to read), combined with the exact recency/importance/topic/game prior, pick the
  `CANDIDATES` most promising memories; their exact similarities then decide. `kibitz bench memory` reports how
  often this returns exactly the exact top 5.
- Incremental: writes go to a small delta that is scanned exactly next to the main matrix (updated or deleted
  rows are masked out there), and the main matrix is rebuilt only when the delta grows past `MAX_DELTA`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from kibitz.memory.embed import Vectors
from kibitz.memory.store import WEIGHTS, Candidates, prior
from kibitz.memory.topics import TopicMatch

TWO_STAGE_FROM = 20_000
PCA_DIMS = 96
CANDIDATES = 400
MAX_DELTA = 2_000


@dataclass(slots=True)
class Row:
    id: int
    vector: Vectors
    updated: float
    importance: float
    game: str
    topic: str


@dataclass
class UserIndex:
    ids: npt.NDArray[np.int64]
    vectors: Vectors
    updated: npt.NDArray[np.float64]
    importance: npt.NDArray[np.float64]
    game_names: list[str]
    game_codes: npt.NDArray[np.int32]
    topic_names: list[str]
    topic_codes: npt.NDArray[np.int32]
    alive: npt.NDArray[np.bool_] = field(init=False)
    position: dict[int, int] = field(init=False)
    delta: dict[int, Row] = field(default_factory=dict)
    basis: Vectors | None = None
    """PCA basis (dim × PCA_DIMS) and the projected vectors, for two-stage search."""
    mean: Vectors | None = None
    reduced: Vectors | None = None

    def __post_init__(self) -> None:
        self.alive = np.ones(len(self.ids), dtype=bool)
        self.position = {int(i): n for n, i in enumerate(self.ids)}
        if len(self.ids) >= TWO_STAGE_FROM:
            self._project()

    @classmethod
    def build(cls, rows: list[Row], dim: int) -> UserIndex:
        game_names, game_codes = np.unique([r.game for r in rows], return_inverse=True)
        topic_names, topic_codes = np.unique([r.topic.lower() for r in rows], return_inverse=True)
        vectors = np.stack([r.vector for r in rows]) if rows else np.zeros((0, dim), np.float32)
        return cls(
            np.array([r.id for r in rows], dtype=np.int64),
            np.ascontiguousarray(vectors, dtype=np.float32),
            np.array([r.updated for r in rows], dtype=np.float64),
            np.array([r.importance for r in rows], dtype=np.float64),
            [str(g) for g in game_names],
            game_codes.astype(np.int32).reshape(-1),
            [str(t) for t in topic_names],
            topic_codes.astype(np.int32).reshape(-1),
        )

    def _project(self) -> None:
        rng = np.random.default_rng(0)
        sample = self.vectors[rng.choice(len(self.vectors), min(len(self.vectors), 8_000), replace=False)]
        self.mean = sample.mean(axis=0)
        _, _, vt = np.linalg.svd(sample - self.mean, full_matrices=False)
        self.basis = np.ascontiguousarray(vt[:PCA_DIMS].T, dtype=np.float32)
        self.reduced = np.ascontiguousarray((self.vectors - self.mean) @ self.basis, dtype=np.float32)

    # --- changes -------------------------------------------------------------------------------------------
    def put(self, row: Row) -> None:
        """A memory was written or updated (with its vector)."""
        self.remove(row.id)
        self.delta[row.id] = row

    def remove(self, memory_id: int) -> None:
        at = self.position.get(memory_id)
        if at is not None:
            self.alive[at] = False
        self.delta.pop(memory_id, None)

    @property
    def stale(self) -> bool:
        """Time to fold the delta into the main matrix."""
        return len(self.delta) > MAX_DELTA

    def rows(self) -> list[Row]:
        """Every live memory (to rebuild)."""
        out = [
            Row(
                int(self.ids[i]),
                self.vectors[i],
                float(self.updated[i]),
                float(self.importance[i]),
                self.game_names[self.game_codes[i]],
                self.topic_names[self.topic_codes[i]],
            )
            for i in np.flatnonzero(self.alive)
        ]
        return out + list(self.delta.values())

    # --- search --------------------------------------------------------------------------------------------
    def candidates(self, query: Vectors, match: TopicMatch, game: str | None, now: float) -> Candidates:
        """Memories that may rank in the top k: all of them (exact), or the two-stage shortlist; plus the delta."""
        main = Candidates(
            self.ids,
            np.zeros(0, np.float32),
            self.updated,
            self.importance,
            self.game_names,
            self.game_codes,
            self.topic_names,
            self.topic_codes,
        )
        if self.reduced is not None and self.basis is not None and self.mean is not None:
            approx = self.reduced @ ((query - self.mean) @ self.basis) + float(self.mean @ query)
            base, factor = prior(main, match, game, now, eligible=self.alive)
            score = np.where(self.alive, (WEIGHTS["similarity"] * approx + base) * factor, -np.inf)
            keep = np.argpartition(-score, min(CANDIDATES, len(score) - 1))[:CANDIDATES]
        else:
            keep = np.flatnonzero(self.alive)
        shortlist = main.subset(keep, self.vectors[keep] @ query)
        if not self.delta:
            return shortlist
        rows = list(self.delta.values())
        extra = Candidates(
            np.array([r.id for r in rows], dtype=np.int64),
            np.stack([r.vector for r in rows]) @ query,
            np.array([r.updated for r in rows]),
            np.array([r.importance for r in rows]),
            [r.game for r in rows],
            np.arange(len(rows), dtype=np.int32),
            [r.topic.lower() for r in rows],
            np.arange(len(rows), dtype=np.int32),
        )
        return shortlist.join(extra)
