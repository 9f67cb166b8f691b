"""Random-init checkpoints for benchmark models, loaded through mmrag's real code path.

A randomly initialised ViT-B-32 costs exactly what trained weights cost, and this machine has
no network: the state dict of ``open_clip.create_model(name, pretrained=None)`` is saved once
as safetensors and loaded with ``create_embedder(name, checkpoint=path)``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

BENCH_MODEL = "ViT-B-32"
DEMO_MODEL = "mmrag-demo"


def cache_dir() -> Path:
    """Where random checkpoints are kept between runs ($MMRAG_BENCH_CACHE or the temp dir)."""
    root = os.environ.get("MMRAG_BENCH_CACHE") or os.path.join(tempfile.gettempdir(), "mmrag-bench")
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def random_checkpoint(model_name: str, seed: int = 0) -> Path:
    """A safetensors file of ``model_name`` with random weights (written once, then reused)."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    from retrieval.embedders.registry import _BUNDLED, add_model_config

    bundled = _BUNDLED.get(model_name)
    if bundled is not None:
        add_model_config(bundled.config)
    path = cache_dir() / f"{model_name}-random-seed{seed}.safetensors"
    if path.is_file():
        return path
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = open_clip.create_model(model_name, pretrained=None)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    tmp = path.with_suffix(".tmp")
    save_file(state, str(tmp))
    tmp.replace(path)
    return path


def checkpoint_for(model_name: str) -> Path:
    """A random-init checkpoint, also for the demo model: same cost as its trained weights,
    and the run does not depend on (or race with) the demo assets being built."""
    return random_checkpoint(model_name)


def load_embedder(model_name: str, batch_size: int = 32, **kwargs: Any) -> Any:
    """The embedder as mmrag builds it, on CPU, from ``checkpoint_for(model_name)``."""
    from retrieval.embedders import create_embedder

    return create_embedder(
        model_name, checkpoint=checkpoint_for(model_name), device="cpu", batch_size=batch_size,
        **kwargs,
    )
