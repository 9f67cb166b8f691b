"""Precision section: image and text encode of the chosen precision (bf16) against fp32."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from mmrag.bench.measure import bare_forward, texts_per_s
from mmrag.bench.models import load_embedder
from mmrag.bench.report import Row
from mmrag.bench.sizes import Sizes
from mmrag.bench.workload import unique_queries


def precision_section(model: str, emb: Any, sizes: Sizes, log: Callable[[str], None]) -> list[Row]:
    """Image and text encode throughput of the chosen precision vs fp32, with min cosine."""
    from retrieval.embedders.precision import cpu_bf16_units

    if emb.precision == "fp32":
        log(f"precision {model}: fp32 (no native bf16 here, or --precision fp32)")
        return []
    ref = load_embedder(model, batch_size=sizes.batch_size, precision="fp32")
    bs = sizes.batch_size
    fast = bare_forward(emb, bs, sizes.bare_batches)
    slow = bare_forward(ref, bs, sizes.bare_batches)
    rng = np.random.default_rng(5)
    images = [rng.integers(0, 255, (240, 320, 3), dtype=np.uint8) for _ in range(8)]
    texts = unique_queries(sizes.text_batch, seed=13)
    img_cos = float((emb.embed_images(images) * ref.embed_images(images)).sum(axis=1).min())
    txt_cos = float((emb.embed_texts(texts) * ref.embed_texts(texts)).sum(axis=1).min())
    reps = max(2, sizes.queries // sizes.text_batch)
    fast_texts = texts_per_s(emb, texts, reps)
    slow_texts = texts_per_s(ref, texts, reps)
    log(f"precision {model}: {emb.precision} {fast:.1f} img/s vs fp32 {slow:.1f}, "
        f"cos {img_cos:.5f}")
    units = cpu_bf16_units() if emb.device == "cpu" else emb.device
    label = f"{emb.precision} ({units or 'emulated'})"
    return [
        Row("precision", f"{model} image encode, batch {bs}, {label}", fast, "img/s", slow,
            "fp32", ">= 1.0", f"min cosine to fp32 {img_cos:.5f} (kept only if >= 0.999)"),
        Row("precision", f"{model} text encode, batch {sizes.text_batch}, {emb.precision}",
            fast_texts, "texts/s", slow_texts, "fp32", ">= 1.0",
            f"min cosine to fp32 {txt_cos:.5f}"),
    ]
