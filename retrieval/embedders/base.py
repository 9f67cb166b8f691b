"""The embedder contract: a backend writes one batch method, the base does the rest."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np

from retrieval.errors import EmbeddingError
from retrieval.types import Modality


def l2_normalize(vectors: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Return float32 rows scaled to unit L2 norm (zero rows stay zero)."""
    arr = np.asarray(vectors, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None, :]
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    return np.ascontiguousarray(arr / np.maximum(norms, eps), dtype=np.float32)


class Embedder(ABC):
    """Turns texts and RGB images into float32 unit vectors of one model."""

    model_id: str
    dim: int
    batch_size: int = 32
    decode_min_side: int | None = None  # short side image decoders may shrink JPEGs to (draft)

    @abstractmethod
    def embed_batch(self, batch: Sequence[Any], modality: Modality) -> np.ndarray:
        """Embed one batch: strings for TEXT, prepared images (see prepare_image) for IMAGE."""

    def prepare_image(self, rgb: np.ndarray) -> Any:
        """Turn one HxWx3 RGB uint8 image into the model's input (thread-safe, no model)."""
        return rgb

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts in batches; returns (n, dim) float32 unit vectors."""
        return self._embed_all(list(texts), Modality.TEXT)

    def embed_images(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Embed RGB uint8 images in batches; returns (n, dim) float32 unit vectors."""
        return self.embed_prepared([self.prepare_image(img) for img in images])

    def embed_prepared(self, prepared: Sequence[Any]) -> np.ndarray:
        """Embed images already passed through prepare_image (e.g. in decode workers)."""
        return self._embed_all(list(prepared), Modality.IMAGE)

    def _embed_all(self, items: list[Any], modality: Modality) -> np.ndarray:
        if not items:
            return np.zeros((0, self.dim), dtype=np.float32)
        chunks = []
        for start in range(0, len(items), self.batch_size):
            batch = items[start : start + self.batch_size]
            out = np.asarray(self.embed_batch(batch, modality), dtype=np.float32)
            if out.shape != (len(batch), self.dim):
                raise EmbeddingError(
                    f"{self.model_id} returned shape {out.shape} for a batch of {len(batch)} "
                    f"{modality.value} inputs; expected ({len(batch)}, {self.dim})"
                )
            chunks.append(out)
        vectors = l2_normalize(np.concatenate(chunks, axis=0))
        if not np.isfinite(vectors).all():
            raise EmbeddingError(f"{self.model_id} produced non-finite values")
        return vectors
