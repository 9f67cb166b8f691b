"""A tiny, seeded open_clip model written as a config JSON plus safetensors checkpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import open_clip
import torch
from safetensors.torch import save_file

from retrieval.config import Settings

TINY_MODEL_NAME = "mmrag-test-tiny"
TINY_SEED = 1234
# A 64-px ViT (16-px patches, 2 layers, width 64, 2 heads) and a 2-layer text tower of width 64;
# context_length 77 and vocab 49408 keep open_clip's default tokenizer usable.
TINY_MODEL_CONFIG: dict[str, Any] = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


def build_tiny_model(seed: int = TINY_SEED) -> torch.nn.Module:
    """The tiny CLIP with weights drawn from ``seed`` (the global torch RNG is left untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = open_clip.CLIP(**TINY_MODEL_CONFIG)
    return model.eval()


def save_checkpoint(model: torch.nn.Module, path: Path, *, half: bool = False) -> Path:
    """Save a state dict as safetensors (fp16 floats when ``half``), as a user would."""
    state = {
        name: (t.detach().half() if half and t.is_floating_point() else t.detach())
        .contiguous()
        .cpu()
        for name, t in model.state_dict().items()
    }
    save_file(state, str(path))
    return path


def make_tiny_checkpoint(
    directory: Path, *, seed: int = TINY_SEED, half: bool = False
) -> tuple[Path, Path]:
    """Write ``mmrag-test-tiny.json`` and its seeded safetensors checkpoint; return both paths."""
    directory.mkdir(parents=True, exist_ok=True)
    config_path = directory / f"{TINY_MODEL_NAME}.json"
    config_path.write_text(json.dumps(TINY_MODEL_CONFIG, indent=2) + "\n", encoding="utf-8")
    suffix = "-fp16" if half else ""
    checkpoint_path = directory / f"{TINY_MODEL_NAME}-seed{seed}{suffix}.safetensors"
    save_checkpoint(build_tiny_model(seed), checkpoint_path, half=half)
    return config_path, checkpoint_path


def tiny_model_settings(
    files: tuple[Path, Path], db: Path, collection: str, **changes: Any
) -> Settings:
    """Settings for ``collection`` in the Milvus Lite file ``db``, with the tiny model on CPU.

    ``files`` is ``(config JSON, checkpoint)`` as ``make_tiny_checkpoint`` returns them.
    """
    config, checkpoint = files
    return Settings(
        uri=str(db),
        collection=collection,
        model=str(config),
        pretrained=None,
        checkpoint=checkpoint,
        device="cpu",
        **changes,
    )
