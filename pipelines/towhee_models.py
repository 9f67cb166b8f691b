"""towhee's CLIP model names mapped to open_clip (model, pretrained tag), and name suggestions.

towhee's ``image_text_embedding.clip`` names HuggingFace checkpoints of OpenAI's CLIP; open_clip
holds the same OpenAI weights under its own names (``clip_vit_base_patch16`` is ``ViT-B-16``
with the ``openai`` tag, in its ``-quickgelu`` variant: OpenAI's weights were trained with
QuickGELU, and the plain config would run them with GELU), downloaded to and loaded from the
HuggingFace cache.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from retrieval.errors import ModelNotFoundError


@dataclass(frozen=True)
class OpenClipName:
    """An open_clip model name and the pretrained tag of its weights."""

    model: str
    pretrained: str


# towhee 1.1.3's image_text_embedding.clip: supported_model_names() lists these four.
TOWHEE_CLIP_MODELS: dict[str, OpenClipName] = {
    "clip_vit_base_patch16": OpenClipName("ViT-B-16-quickgelu", "openai"),
    "clip_vit_base_patch32": OpenClipName("ViT-B-32-quickgelu", "openai"),
    "clip_vit_large_patch14": OpenClipName("ViT-L-14-quickgelu", "openai"),
    "clip_vit_large_patch14_336": OpenClipName("ViT-L-14-336-quickgelu", "openai"),
}
# The older towhee/clip operator's names (towhee.models.clip), accepted too.
LEGACY_CLIP_MODELS: dict[str, OpenClipName] = {
    "clip_vit_b16": OpenClipName("ViT-B-16-quickgelu", "openai"),
    "clip_vit_b32": OpenClipName("ViT-B-32-quickgelu", "openai"),
    "clip_resnet_r50": OpenClipName("RN50-quickgelu", "openai"),
    "clip_resnet_r101": OpenClipName("RN101-quickgelu", "openai"),
}
FORMATS = ("pytorch", "onnx")


def supported_model_names(format: str | None = None) -> list[str]:
    """towhee's model names, as towhee's clip operator lists them (``format`` as towhee's)."""
    if format is not None and format not in FORMATS:
        raise ValueError(f"unknown format {format!r}; towhee's clip lists 'pytorch' and 'onnx'")
    return list(TOWHEE_CLIP_MODELS)


def towhee_clip_model(name: str) -> OpenClipName | None:
    """The open_clip name and tag for a towhee model name (None if it is not one)."""
    return TOWHEE_CLIP_MODELS.get(name) or LEGACY_CLIP_MODELS.get(name)


def _key(name: str) -> str:
    return name.lower().replace("_", "-")


def closest_model_names(name: str, open_clip_names: list[str], limit: int = 5) -> list[str]:
    """The known names most like ``name``: towhee's, then open_clip's (case and _/- folded)."""
    candidates = [*TOWHEE_CLIP_MODELS, *LEGACY_CLIP_MODELS, *open_clip_names]
    by_key: dict[str, str] = {}
    for candidate in candidates:
        by_key.setdefault(_key(candidate), candidate)
    close = difflib.get_close_matches(_key(name), list(by_key), n=limit, cutoff=0.6)
    return [by_key[key] for key in close]


def unknown_model_error(name: str, open_clip_names: list[str]) -> ModelNotFoundError:
    """One line naming the closest known names and where the full lists are."""
    close = closest_model_names(name, open_clip_names)
    hint = f"; the closest known names are {', '.join(close)}" if close else ""
    return ModelNotFoundError(
        f"unknown CLIP model {name!r}{hint}. Use one of towhee's names "
        f"({', '.join(TOWHEE_CLIP_MODELS)}) or an open_clip name from "
        "retrieval.embedders.list_models()."
    )
