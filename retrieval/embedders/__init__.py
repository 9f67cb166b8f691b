"""Embedders: the contract, open_clip models, and the name registry (torch loads lazily)."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from retrieval.embedders.base import Embedder, l2_normalize

if TYPE_CHECKING:
    from retrieval.embedders.open_clip import OpenClipEmbedder, resolve_device
    from retrieval.embedders.preprocess import PreprocessConfig, preprocess_image
    from retrieval.embedders.registry import (
        DEMO_MODEL,
        add_model_config,
        create_embedder,
        create_embedder_from_settings,
        list_models,
        register_model,
    )

_LAZY = {
    "OpenClipEmbedder": "retrieval.embedders.open_clip",
    "resolve_device": "retrieval.embedders.open_clip",
    "PreprocessConfig": "retrieval.embedders.preprocess",
    "preprocess_image": "retrieval.embedders.preprocess",
    "DEMO_MODEL": "retrieval.embedders.registry",
    "add_model_config": "retrieval.embedders.registry",
    "create_embedder": "retrieval.embedders.registry",
    "create_embedder_from_settings": "retrieval.embedders.registry",
    "list_models": "retrieval.embedders.registry",
    "register_model": "retrieval.embedders.registry",
}

__all__ = [
    "DEMO_MODEL",
    "Embedder",
    "OpenClipEmbedder",
    "PreprocessConfig",
    "add_model_config",
    "create_embedder",
    "create_embedder_from_settings",
    "l2_normalize",
    "list_models",
    "preprocess_image",
    "register_model",
    "resolve_device",
]


def __getattr__(name: str) -> Any:
    """Import torch/open_clip-backed names on first use, so the contract stays light."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(module), name)
