"""Scale-out test helpers: a second tiny model (another dimension), settings, ingesting."""

from __future__ import annotations

import json
from pathlib import Path

import open_clip
import torch

from ingest import IngestOptions, IngestSummary, open_source, run_ingest
from retrieval.components import build_components
from retrieval.config import Settings
from tests.support.tiny_model import TINY_MODEL_CONFIG, save_checkpoint

MODEL_B = "mmrag-test-tiny-b"
MODEL_B_DIM = 24


def make_model_b(directory: Path) -> tuple[Path, Path]:
    """A tiny model named ``mmrag-test-tiny-b`` with 24-d embeddings (config, checkpoint)."""
    directory.mkdir(parents=True, exist_ok=True)
    config = {**TINY_MODEL_CONFIG, "embed_dim": MODEL_B_DIM}
    config_path = directory / f"{MODEL_B}.json"
    config_path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(77)
        model = open_clip.CLIP(**config).eval()
    return config_path, save_checkpoint(model, directory / f"{MODEL_B}.safetensors")


def tiny_settings(uri: str, collection: str, config: Path, checkpoint: Path) -> Settings:
    """Settings for the tiny model on CPU (no download, no pretrained tag)."""
    return Settings.model_validate({
        "uri": uri,
        "collection": collection,
        "model": str(config),
        "checkpoint": checkpoint,
        "pretrained": None,
        "device": "cpu",
        "batch_size": 8,
    })


def ingest_folder(settings: Settings, folder: Path) -> IngestSummary:
    """Run the local ingest job over a folder with these settings."""
    components = build_components(settings)
    try:
        return run_ingest(components, open_source(folder), IngestOptions(batch_size=8, workers=2))
    finally:
        components.close()


def model_args(config: Path, checkpoint: Path) -> list[str]:
    """CLI flags naming a tiny model."""
    return ["--model", str(config), "--checkpoint", str(checkpoint), "--device", "cpu"]
