"""image_text_embedding.clip: CLIP image or text embeddings through mmrag's open_clip embedder.

Takes towhee's arguments (``model_name`` in towhee's names or open_clip's, ``modality``,
``device`` as an index or a torch device, ``checkpoint_path``). A towhee name loads open_clip's
copy of the same OpenAI weights (``pipelines.towhee_models``) from the HuggingFace cache, so a
machine that downloaded them once runs offline; ``checkpoint_path=`` loads a local file.
The vectors carry the model that made them (``ModelVectors``), so ``ann_insert`` records its id
and spec as the ingest job does; they are unit length already.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

from pipelines import register
from pipelines.image import as_rgb
from pipelines.towhee_models import supported_model_names, towhee_clip_model, unknown_model_error
from retrieval.embedders import create_embedder, list_models
from retrieval.embedders.base import Embedder
from retrieval.embedders.tagged import EmbeddingModel, ModelVectors
from retrieval.errors import ConfigError
from retrieval.model_spec import model_spec

MODALITIES = ("image", "text")


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


def torch_device(device: int | str | None) -> str:
    """towhee's ``device``: None or 'auto' picks CUDA when present, -1 is the CPU, N is cuda:N."""
    if device is None:
        return "auto"
    if isinstance(device, bool):
        raise ConfigError(f"device must be an index, 'cpu', 'cuda:N' or None, not {device!r}")
    if isinstance(device, int):
        return "cpu" if device < 0 else f"cuda:{device}"
    return str(device)


def clip_model_names() -> list[str]:
    """open_clip's names (and mmrag's registered ones), without bare timm model names."""
    import open_clip

    names = []
    for name in list_models():
        vision = (open_clip.get_model_config(name) or {}).get("vision_cfg") or {}
        if vision.get("timm_model_name") != name:
            names.append(name)
    return names


def resolve_model(model_name: str, pretrained: str | None) -> tuple[str, str | None]:
    """(open_clip name, tag) for a towhee or open_clip name; one-line error naming close ones."""
    mapped = towhee_clip_model(model_name)
    if mapped is not None:
        return mapped.model, pretrained or mapped.pretrained
    if model_name.endswith(".json") or model_name.startswith(("hf-hub:", "local-dir:")):
        return model_name, pretrained
    known = clip_model_names()
    if model_name.replace("/", "-") not in known:
        raise unknown_model_error(model_name, known)
    return model_name, pretrained


@register(name="image-text-embedding/clip")
class Clip:
    """Embed RGB images or texts as unit vectors; a list input is one batched model call."""

    def __init__(
        self,
        model_name: str = "ViT-B-32",
        modality: str = "image",
        device: int | str | None = None,
        checkpoint_path: str | Path | None = None,
        *,
        pretrained: str | None = None,
        checkpoint: str | Path | None = None,
        batch_size: int = 32,
    ) -> None:
        if modality not in MODALITIES:
            raise ConfigError(f"modality must be 'image' or 'text', not {modality!r}")
        if checkpoint is not None and checkpoint_path is not None:
            raise ConfigError("pass checkpoint_path= or checkpoint=, not both (they are one)")
        weights = checkpoint_path if checkpoint_path is not None else checkpoint
        name, tag = resolve_model(model_name, pretrained)
        self.model_name = model_name
        self.modality = modality
        self.embedder = _cached_embedder(
            name, tag, str(weights) if weights else None, torch_device(device), batch_size
        )
        spec = model_spec(name, tag, weights)
        self.model = EmbeddingModel.of(self.embedder, spec)  # handed on with every vector

    @staticmethod
    def supported_model_names(format: str | None = None) -> list[str]:
        """towhee's model names for this operator (open_clip's names are accepted as well)."""
        return supported_model_names(format)

    def __call__(self, data: Any) -> np.ndarray | list[np.ndarray]:
        batch: list[Any] = data if isinstance(data, list) else [data]
        if self.modality == "text":
            vectors = self.embedder.embed_texts([str(t) for t in batch])
        else:
            vectors = self.embedder.embed_images([as_rgb(image) for image in batch])
        tagged = ModelVectors(vectors, self.model)
        return list(tagged) if isinstance(data, list) else tagged[0]
