"""Checks of what the Milvus store is given: its options, and query vectors and page sizes."""

from __future__ import annotations

import numpy as np

from retrieval.errors import ConfigError, ModelMismatchError, StoreError
from retrieval.stores.milvus_rows import (
    COLLECTION_NAME,
    HNSW_MAX_EF,
    IVF_MAX_NPROBE,
    MAX_TOPK,
)

CONSISTENCY_LEVELS = ("Strong", "Session", "Bounded", "Eventually")


def check_options(
    uri: str,
    collection: str,
    *,
    consistency: str,
    timeouts: tuple[float, ...],
    hnsw_ef: int,
    ivf_nprobe: int,
) -> None:
    """A ConfigError naming the first option the store cannot work with."""
    if not uri or not uri.strip():
        raise ConfigError("Milvus URI is empty")
    if not COLLECTION_NAME.match(collection):
        raise ConfigError(
            f"collection name {collection!r} must start with a letter or '_' and "
            "contain only letters, digits and '_' (at most 255)"
        )
    if consistency not in CONSISTENCY_LEVELS:
        raise ConfigError(f"consistency must be one of {', '.join(CONSISTENCY_LEVELS)}")
    if min(timeouts) <= 0:
        raise ConfigError("timeouts must be positive")
    if not 1 <= hnsw_ef <= HNSW_MAX_EF:
        raise ConfigError(f"hnsw_ef must be within 1..{HNSW_MAX_EF}, got {hnsw_ef}")
    if not 1 <= ivf_nprobe <= IVF_MAX_NPROBE:
        raise ConfigError(f"ivf_nprobe must be within 1..{IVF_MAX_NPROBE}, got {ivf_nprobe}")


def check_page(k: int, offset: int) -> None:
    """A ConfigError unless 1 <= k and 0 <= offset with k + offset within Milvus's top-k."""
    if k < 1 or offset < 0:
        raise ConfigError(f"k must be >= 1 and offset >= 0 (got k={k}, offset={offset})")
    if k + offset > MAX_TOPK:
        raise ConfigError(f"k + offset must be at most {MAX_TOPK} in Milvus (got {k} + {offset})")


def query_matrix(vectors: np.ndarray, dim: int, model_id: str, collection: str) -> np.ndarray:
    """Query vectors as a finite float32 (n, dim) matrix, or the error saying why not."""
    queries = np.asarray(vectors, dtype=np.float32)
    if queries.ndim == 1:
        queries = queries[None, :]
    if queries.ndim != 2 or queries.shape[1] != dim:
        raise ModelMismatchError(
            f"query vectors have shape {tuple(queries.shape)}, collection "
            f"{collection!r} (model {model_id!r}) has dim {dim}"
        )
    if not np.isfinite(queries).all():
        raise StoreError("query vectors must be finite")
    return queries
