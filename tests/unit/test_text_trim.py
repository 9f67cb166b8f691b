"""The padding trim of text encoding is exact: same embeddings as open_clip's encode_text."""

from __future__ import annotations

import numpy as np
import open_clip
import pytest
import torch

from retrieval.embedders.base import Embedder
from retrieval.embedders.text_trim import (
    encode_text_trimmed,
    supports_trim,
    text_encoder,
    trimmed_length,
)
from retrieval.types import Modality

TEXTS = [
    "",
    "a dog",
    "a photo of a red car parked on a wet street at night",
    "x " * 40,  # 40+ tokens
    "word " * 100,  # truncated at the context length: no trim possible, still exact
]


def _full_and_trimmed(model: torch.nn.Module, texts: list[str], name: str) -> tuple:
    tokens = open_clip.get_tokenizer(name)(texts)
    with torch.inference_mode():
        full = model.encode_text(tokens).numpy()
        trimmed = encode_text_trimmed(model, tokens).numpy()
    return full, trimmed


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(axis=1)


def test_tiny_model_is_trimmed_and_exact(tiny_embedder: Embedder) -> None:
    model = tiny_embedder.model  # type: ignore[attr-defined]
    assert supports_trim(model)
    for batch in ([t] for t in TEXTS):  # one text at a time
        full, trimmed = _full_and_trimmed(model, batch, tiny_embedder.model_name)  # type: ignore[attr-defined]
        assert np.abs(full - trimmed).max() < 1e-5
    full, trimmed = _full_and_trimmed(model, TEXTS, tiny_embedder.model_name)  # type: ignore[attr-defined]
    assert _cosine(full, trimmed).min() >= 0.9999  # batch of mixed lengths
    assert np.abs(full - trimmed).max() < 1e-5


def test_embedder_text_path_matches_untrimmed(tiny_embedder: Embedder) -> None:
    texts = ["a cat", "two dogs running on the beach under a cloudy sky"]
    got = tiny_embedder.embed_texts(texts)
    model = tiny_embedder.model  # type: ignore[attr-defined]
    tokens = tiny_embedder.tokenizer(texts)  # type: ignore[attr-defined]
    with torch.inference_mode():
        ref = model.encode_text(tokens).numpy()
    ref = ref / np.linalg.norm(ref, axis=1, keepdims=True)
    assert np.abs(got - ref).max() < 1e-5
    raw = tiny_embedder.embed_batch(texts, Modality.TEXT)
    assert raw.shape == (2, tiny_embedder.dim)


def test_trimmed_length() -> None:
    tokens = open_clip.get_tokenizer("ViT-B-32")(["a dog", "a photo of a cat"])
    assert trimmed_length(tokens) == 7  # sot + 5 words + eot
    assert trimmed_length(open_clip.get_tokenizer("ViT-B-32")(["word " * 100])) == 77


def test_opt_out_and_unsupported_models_keep_encode_text(tiny_embedder: Embedder) -> None:
    model = tiny_embedder.model  # type: ignore[attr-defined]
    assert text_encoder(model, trim=False) == model.encode_text
    model.text_pool_type = "last"
    try:
        assert not supports_trim(model)
        assert text_encoder(model) == model.encode_text
    finally:
        model.text_pool_type = "argmax"
    assert not supports_trim(torch.nn.Linear(2, 2))


@pytest.mark.slow
def test_vit_b_32_random_init_is_exact() -> None:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = open_clip.create_model("ViT-B-32", pretrained=None).eval()
    assert supports_trim(model)
    full, trimmed = _full_and_trimmed(model, TEXTS, "ViT-B-32")
    assert _cosine(full, trimmed).min() >= 0.9999
    assert np.abs(full - trimmed).max() < 1e-4
