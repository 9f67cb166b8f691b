"""The demo: synthetic captioned scenes and a small open_clip model trained on them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from retrieval.demo.paths import ASSETS_DIR, CONFIG_PATH, DEMO_MODEL_NAME, WEIGHTS_PATH
from retrieval.demo.synthetic import (
    COLOURS,
    HELD_OUT,
    SHAPES,
    Sample,
    Scene,
    caption_for,
    combinations,
    generate_dataset,
    render_scene,
    write_dataset,
)

if TYPE_CHECKING:
    from retrieval.demo.model import DemoModel, load_demo_model, register_demo_config

_LAZY = {"DemoModel", "load_demo_model", "register_demo_config"}

__all__ = [
    "ASSETS_DIR",
    "COLOURS",
    "CONFIG_PATH",
    "DEMO_MODEL_NAME",
    "HELD_OUT",
    "SHAPES",
    "WEIGHTS_PATH",
    "DemoModel",
    "Sample",
    "Scene",
    "caption_for",
    "combinations",
    "generate_dataset",
    "load_demo_model",
    "register_demo_config",
    "render_scene",
    "write_dataset",
]


def __getattr__(name: str) -> Any:
    """Import the torch-backed model helpers only when first asked for."""
    if name in _LAZY:
        from retrieval.demo import model

        return getattr(model, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
