"""image_text_embedding.clip: CLIP image or text embeddings through mmrag's open_clip embedder.

The vectors carry the model that made them (``ModelVectors``), so ``ann_insert`` records its id
and spec as the ingest job does.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

from pipelines import register
from retrieval.embedders import create_embedder
from retrieval.embedders.base import Embedder
from retrieval.embedders.tagged import EmbeddingModel, ModelVectors
from retrieval.errors import ConfigError
from retrieval.model_spec import model_spec


@functools.lru_cache(maxsize=4)
def _cached_embedder(
    model_name: str, pretrained: str | None, checkpoint: str | None, device: str, batch_size: int
) -> Embedder:
    return create_embedder(
        model_name,
        pretrained=pretrained,
        checkpoint=Path(checkpoint) if checkpoint else None,
        device=device,
        batch_size=batch_size,
    )


@register(name="image-text-embedding/clip")
class Clip:
    """Embed RGB images or texts as unit vectors; a list input is one batched model call."""

    def __init__(
        self,
        model_name: str = "ViT-B-32",
        pretrained: str | None = None,
        checkpoint: str | Path | None = None,
        modality: str = "image",
        device: str = "auto",
        batch_size: int = 32,
    ) -> None:
        if modality not in ("image", "text"):
            raise ConfigError(f"modality must be 'image' or 'text', not {modality!r}")
        self.modality = modality
        self.embedder = _cached_embedder(
            model_name, pretrained, str(checkpoint) if checkpoint else None, device, batch_size
        )
        spec = model_spec(model_name, pretrained, checkpoint)
        self.model = EmbeddingModel.of(self.embedder, spec)  # handed on with every vector

    def __call__(self, data: np.ndarray | str | list) -> np.ndarray | list[np.ndarray]:
        batch: list[Any] = data if isinstance(data, list) else [data]
        if self.modality == "text":
            vectors = self.embedder.embed_texts([str(t) for t in batch])
        else:
            vectors = self.embedder.embed_images(batch)
        tagged = ModelVectors(vectors, self.model)
        return list(tagged) if isinstance(data, list) else tagged[0]
