"""The shipped mmrag-demo checkpoint: loads through open_clip, is small, and retrieves."""

from __future__ import annotations

import open_clip
import pytest
import torch
from safetensors import safe_open

from retrieval.demo.evaluate import precision_at_k
from retrieval.demo.model import DemoModel, load_demo_model, register_demo_config
from retrieval.demo.paths import CONFIG_PATH, DEMO_MODEL_NAME, WEIGHTS_PATH

FRESH_GALLERY_SEED = 7_001


@pytest.fixture(scope="module")
def demo() -> DemoModel:
    return load_demo_model()


def test_assets_are_shipped_small_and_fp16() -> None:
    assert CONFIG_PATH.is_file() and WEIGHTS_PATH.is_file()
    assert WEIGHTS_PATH.stat().st_size <= 16 * 1024 * 1024
    with safe_open(str(WEIGHTS_PATH), framework="pt") as handle:
        dtypes = {handle.get_slice(name).get_dtype() for name in handle.keys()}  # noqa: SIM118
    assert dtypes == {"F16"}


def test_loads_with_plain_open_clip_calls_as_fp32() -> None:
    register_demo_config()
    assert DEMO_MODEL_NAME in open_clip.list_models()
    model = open_clip.create_model(DEMO_MODEL_NAME, pretrained=str(WEIGHTS_PATH))
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert model.visual.image_size == (64, 64)
    tokens = open_clip.get_tokenizer(DEMO_MODEL_NAME)(["a red circle"])
    assert tokens.shape == (1, model.positional_embedding.shape[0])
    with torch.no_grad():
        vector = model.encode_text(tokens, normalize=True)
    assert vector.shape == (1, 128) and torch.isfinite(vector).all()


def test_text_to_image_precision_on_a_fresh_gallery(demo: DemoModel) -> None:
    result = precision_at_k(demo.model, demo.preprocess, demo.tokenizer, seed=FRESH_GALLERY_SEED)
    assert result.trained >= 0.85, result
    assert result.held_out > 0.3, result
