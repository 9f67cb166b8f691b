"""Where the shipped demo model lives, and its open_clip name."""

from __future__ import annotations

from pathlib import Path

DEMO_MODEL_NAME = "mmrag-demo"
ASSETS_DIR = Path(__file__).resolve().parent / "assets"
CONFIG_PATH = ASSETS_DIR / f"{DEMO_MODEL_NAME}.json"
WEIGHTS_PATH = ASSETS_DIR / f"{DEMO_MODEL_NAME}.safetensors"
TRAINING_RECORD_PATH = ASSETS_DIR / f"{DEMO_MODEL_NAME}.train.json"
