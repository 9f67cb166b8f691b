"""Vectors that carry the model that made them, so whoever stores them records that model."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from retrieval.embedders.base import Embedder


@dataclass(frozen=True)
class EmbeddingModel:
    """The model vectors come from, as a collection records it: id, width and load spec."""

    model_id: str
    dim: int
    spec: Mapping[str, Any] | None = None

    @classmethod
    def of(cls, embedder: Embedder, spec: Mapping[str, Any] | None = None) -> EmbeddingModel:
        """The model of an embedder, with the spec it was loaded from (retrieval.model_spec)."""
        return cls(model_id=embedder.model_id, dim=embedder.dim, spec=spec)


class ModelVectors(np.ndarray):
    """float32 vectors (one, or a batch) carrying ``model``; rows, views and arithmetic keep it.

    The towhee-style operators hand these on, so ``ann_insert`` records the model that made the
    vectors instead of a hand-written id. ``np.asarray`` gives back a plain array.
    """

    model: EmbeddingModel | None

    def __new__(cls, vectors: Any, model: EmbeddingModel | None) -> ModelVectors:
        out = np.asarray(vectors, dtype=np.float32).view(cls)
        out.model = model
        return out

    def __array_finalize__(self, obj: Any) -> None:
        self.model = getattr(obj, "model", None)

    def __reduce__(self) -> Any:
        reduced: Any = super().__reduce__()  # (rebuild, args, array state)
        return reduced[0], reduced[1], (reduced[2], self.model)

    def __setstate__(self, state: Any) -> None:
        array_state, self.model = state
        super().__setstate__(array_state)


def model_of(vector: Any) -> EmbeddingModel | None:
    """The model a vector carries (None for a plain array or anything else)."""
    return vector.model if isinstance(vector, ModelVectors) else None


def with_model(vectors: np.ndarray, model: EmbeddingModel | None) -> np.ndarray:
    """The vectors carrying ``model``; a plain float32 array when there is none."""
    if model is None:
        return np.asarray(vectors, dtype=np.float32)
    return ModelVectors(vectors, model)
