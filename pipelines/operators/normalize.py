"""towhee.np_normalize: L2-normalise a vector (or a batch of vectors)."""

from __future__ import annotations

import numpy as np

from pipelines import register
from retrieval.embedders.base import l2_normalize


@register(name="towhee/np-normalize")
class NpNormalize:
    """Scale a vector, or each vector of a batch, to unit L2 norm."""

    def __call__(self, vec: np.ndarray | list) -> np.ndarray | list[np.ndarray]:
        if isinstance(vec, list):
            return list(l2_normalize(np.stack(vec))) if vec else []
        return l2_normalize(vec)[0]
