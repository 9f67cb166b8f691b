"""towhee.np_normalize: L2-normalise a vector (or a batch of vectors)."""

from __future__ import annotations

import numpy as np

from pipelines import register
from retrieval.embedders.base import l2_normalize
from retrieval.embedders.tagged import model_of, with_model


@register(name="towhee/np-normalize")
class NpNormalize:
    """Scale a vector, or each vector of a batch, to unit L2 norm (the vectors' model kept)."""

    def __call__(self, vec: np.ndarray | list) -> np.ndarray | list[np.ndarray]:
        if isinstance(vec, list):
            if not vec:
                return []
            unit = l2_normalize(np.stack(vec))
            return [with_model(u, model_of(v)) for u, v in zip(unit, vec, strict=True)]
        return with_model(l2_normalize(vec)[0], model_of(vec))
