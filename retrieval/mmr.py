"""Maximal marginal relevance: re-rank candidates for relevance and mutual diversity."""

from __future__ import annotations

import numpy as np


def mmr_order(
    query: np.ndarray, candidates: np.ndarray, count: int, diversity: float
) -> list[int]:
    """Indices of up to ``count`` candidates chosen greedily by MMR.

    Each step picks the candidate maximising
    ``(1 - diversity) * sim(query, c) - diversity * max(sim(c, chosen))``; all vectors are unit
    rows, so similarity is the inner product. ``diversity`` 0 keeps the relevance order and 1
    only spreads the picks apart. Ties go to the earlier (more relevant) candidate, so the
    order is deterministic.
    """
    if not 0.0 <= diversity <= 1.0:
        raise ValueError(f"diversity must be within [0, 1], got {diversity}")
    cands = np.asarray(candidates, dtype=np.float32)
    if cands.ndim != 2 or cands.shape[0] == 0 or count <= 0:
        return []
    relevance = cands @ np.asarray(query, dtype=np.float32).reshape(-1)
    count = min(count, cands.shape[0])
    if diversity == 0.0:
        return [int(i) for i in np.argsort(-relevance, kind="stable")[:count]]
    pairwise = cands @ cands.T
    chosen: list[int] = []
    redundancy = np.full(cands.shape[0], -np.inf, dtype=np.float32)
    available = np.ones(cands.shape[0], dtype=bool)
    for _ in range(count):
        penalty = np.where(np.isfinite(redundancy), redundancy, 0.0)
        scores = (1.0 - diversity) * relevance - diversity * penalty
        scores = np.where(available, scores, -np.inf)
        best = int(np.argmax(scores))
        chosen.append(best)
        available[best] = False
        redundancy = np.maximum(redundancy, pairwise[best])
    return chosen
