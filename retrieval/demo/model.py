"""The demo model: its open_clip config, registration, fp16 saving and loading."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import open_clip
import torch
from safetensors.torch import save_file

from retrieval.demo.paths import CONFIG_PATH, DEMO_MODEL_NAME, WEIGHTS_PATH

# A 64-px ViT (8-px patches, 3 layers of width 128) and a 2-layer text tower of width 128.
# context_length 32 keeps text encoding cheap; open_clip.get_tokenizer reads it from this config.
DEMO_MODEL_CONFIG: dict[str, Any] = {
    "embed_dim": 128,
    "vision_cfg": {
        "image_size": 64,
        "layers": 3,
        "width": 128,
        "head_width": 32,
        "patch_size": 8,
    },
    "text_cfg": {
        "context_length": 32,
        "vocab_size": 49408,
        "width": 128,
        "heads": 4,
        "layers": 2,
    },
}


class DemoModel(NamedTuple):
    """A loaded demo model with its inference image transform and tokenizer."""

    model: torch.nn.Module
    preprocess: Callable[[Any], torch.Tensor]
    tokenizer: Callable[..., torch.Tensor]


def write_config(path: Path = CONFIG_PATH) -> Path:
    """Write DEMO_MODEL_CONFIG as an open_clip model config JSON named after the model."""
    if path.stem != DEMO_MODEL_NAME:
        raise ValueError(f"open_clip names configs by file stem; {path.name} is not "
                         f"{DEMO_MODEL_NAME}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(DEMO_MODEL_CONFIG, indent=2) + "\n", encoding="utf-8")
    return path


def register_demo_config(path: Path = CONFIG_PATH, force: bool = False) -> None:
    """Register the mmrag-demo config with open_clip (once, unless force)."""
    if force or open_clip.get_model_config(DEMO_MODEL_NAME) is None:
        if not path.is_file():
            raise FileNotFoundError(f"demo model config not found: {path}")
        open_clip.add_model_config(path)


def save_fp16(model: torch.nn.Module, path: Path = WEIGHTS_PATH) -> Path:
    """Save the model's state dict as fp16 safetensors (non-float tensors unchanged)."""
    state = {
        name: (t.detach().half() if t.is_floating_point() else t.detach()).contiguous().cpu()
        for name, t in model.state_dict().items()
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata={"format": "pt", "model": DEMO_MODEL_NAME})
    path.chmod(0o644)
    return path


def load_demo_model(weights: Path = WEIGHTS_PATH, device: str = "cpu") -> DemoModel:
    """Create mmrag-demo through open_clip with the given weights, in fp32 eval mode."""
    register_demo_config()
    model, _, preprocess = open_clip.create_model_and_transforms(
        DEMO_MODEL_NAME, pretrained=str(weights), device=device
    )
    model.eval()
    return DemoModel(model, preprocess, open_clip.get_tokenizer(DEMO_MODEL_NAME))
