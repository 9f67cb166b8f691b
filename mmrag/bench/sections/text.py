"""Text section: text encode with padding trimmed vs full 77-token padding, at batch 1 and N."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from mmrag.bench.measure import seconds, texts_per_s
from mmrag.bench.models import load_embedder
from mmrag.bench.report import Row
from mmrag.bench.sizes import Sizes
from mmrag.bench.workload import unique_queries, warm_texts

TEXT_PAIRS_BUDGET_S = 1.0  # batch-1 timing: pairs (trimmed, full) until this much time is spent


@dataclass
class TextRun:
    """The text rows, the figures kept in the report's extra, and the embedder they used."""

    rows: list[Row]
    figures: dict[str, float]
    embedder: Any

    @property
    def batch_per_s(self) -> float:
        """Trimmed text encode at the text batch size: the HTTP search section's ceiling."""
        return self.figures["text_batch_per_s"]


def text_section(model: str, sizes: Sizes, log: Callable[[str], None]) -> TextRun:
    """Text encode ms at batch 1 (trimmed vs full padding), equivalence, batched throughput."""
    import torch

    emb = load_embedder(model, batch_size=sizes.text_batch, precision=sizes.precision)
    full = load_embedder(
        model, batch_size=sizes.text_batch, trim_text=False, precision=sizes.precision
    )
    queries = unique_queries(max(sizes.queries, sizes.text_batch * 3), seed=11)
    for text in warm_texts():
        emb.embed_texts([text])
    full.embed_texts(queries[:2])  # warm-up (one shape: always 77 positions)
    emb.embed_texts(queries[: sizes.text_batch])
    full.embed_texts(queries[: sizes.text_batch])
    n = max(8, sizes.queries // 2)
    trim_times: list[float] = []
    full_times: list[float] = []
    spent = 0.0
    for i, query in enumerate(itertools.cycle(queries)):  # interleaved: load hits both alike
        if i >= n and (spent >= TEXT_PAIRS_BUDGET_S or i >= 20 * n):
            break  # small models: more pairs, until a second is spent, so noise cancels
        trim_times.append(seconds(functools.partial(emb.embed_texts, [query])))
        full_times.append(seconds(functools.partial(full.embed_texts, [query + " "])))
        spent += trim_times[-1] + full_times[-1]
    t_trim, t_full = float(np.median(trim_times)), float(np.median(full_times))
    a = emb.embed_texts(queries[: sizes.text_batch])
    b = full.embed_texts(queries[: sizes.text_batch])
    cos = float((a * b).sum(axis=1).min())
    diff = float(np.abs(a - b).max())
    batch = queries[: sizes.text_batch]
    reps = max(2, sizes.queries // sizes.text_batch)
    batch_per_s = texts_per_s(emb, batch, reps)
    batch_full_per_s = texts_per_s(full, batch, max(2, reps // 2))
    log(
        f"text {model}: batch1 trimmed {t_trim * 1e3:.1f} ms, full {t_full * 1e3:.1f} ms, "
        f"cos {cos:.6f}, max|d| {diff:.2e}"
    )
    rows = [
        Row(
            "text",
            f"{model} text encode, batch 1, padding trimmed",
            t_trim * 1e3,
            "ms",
            t_full * 1e3,
            "full 77-token padding",
            "<= 1.0",
            f"min cosine {cos:.6f}, max |diff| {diff:.1e}",
        ),
        Row(
            "text",
            f"{model} text encode, batch {sizes.text_batch}, trimmed",
            batch_per_s,
            "texts/s",
            batch_full_per_s,
            "full padding",
            ">= 1.0",
        ),
    ]
    figures = {
        "text_ms_b1": t_trim * 1e3,
        "text_batch_per_s": batch_per_s,
        "torch_threads": torch.get_num_threads(),
    }
    return TextRun(rows, figures, emb)
