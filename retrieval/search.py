"""Query -> vector -> hits: the one search path of the API, the CLI, chat and eval.

A page of hits is a plain top-k search (``plain_search``: offset and filter in the store) or,
with ``diversity`` > 0, maximal marginal relevance over the top candidates (``mmr_search``);
either way hits below ``min_score`` are dropped (``above``). ``Searcher`` embeds a query with
the collection's own model and runs that path (blocking, for the CLI and chat).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from retrieval.embedders.base import Embedder
from retrieval.errors import ConfigError, ModelMismatchError
from retrieval.limits import MAX_TOPK
from retrieval.mmr import mmr_order
from retrieval.stores.base import VectorStore
from retrieval.types import Hit

MMR_MIN_CANDIDATES = 50
MMR_CANDIDATE_FACTOR = 3


@dataclass(frozen=True)
class SearchRequest:
    """One page: size, start, a safe filter expression, a score floor and the MMR weight."""

    k: int = 10
    offset: int = 0
    expr: str | None = None
    min_score: float | None = None
    diversity: float = 0.0  # 0: plain ranking; up to 1: only spread results apart


def check_page(k: int, offset: int) -> None:
    """Refuse a page the store cannot serve (ConfigError with the API's message)."""
    if k + offset > MAX_TOPK:
        raise ConfigError(
            f"k + offset must be at most {MAX_TOPK} (Milvus limit); got {k} + {offset}"
        )


def above(hits: list[Hit], min_score: float | None) -> list[Hit]:
    """The hits scoring at least ``min_score`` (all when it is None)."""
    return hits if min_score is None else [h for h in hits if h.score >= min_score]


def plain_search(
    store: VectorStore, vectors: np.ndarray, request: SearchRequest, *, with_vectors: bool = False
) -> list[list[Hit]]:
    """One top-k store call for a matrix of query vectors (offset and filter; no min_score)."""
    queries = np.asarray(vectors, dtype=np.float32)
    return store.search(
        queries, request.k, offset=request.offset, expr=request.expr, with_vectors=with_vectors
    )


def mmr_search(store: VectorStore, vector: np.ndarray, request: SearchRequest) -> list[Hit]:
    """MMR over the top candidates (above min_score), then the page."""
    wanted = request.offset + request.k
    fetch = min(MAX_TOPK, max(MMR_MIN_CANDIDATES, MMR_CANDIDATE_FACTOR * wanted))
    query = np.asarray(vector, dtype=np.float32)[None, :]
    candidates = store.search(query, fetch, expr=request.expr, with_vectors=True)[0]
    candidates = above(candidates, request.min_score)
    candidates = [h for h in candidates if h.vector is not None and h.vector.size]
    if not candidates:
        return []
    matrix = np.stack([np.asarray(h.vector, dtype=np.float32) for h in candidates])
    order = mmr_order(query[0], matrix, wanted, request.diversity)
    return [candidates[i] for i in order][request.offset : request.offset + request.k]


def search_page(store: VectorStore, vector: np.ndarray, request: SearchRequest) -> list[Hit]:
    """One page of hits for one query vector: plain ranking or MMR, then the score floor."""
    if request.diversity > 0.0:
        return mmr_search(store, vector, request)
    row = np.asarray(vector, dtype=np.float32)
    return above(plain_search(store, row[None, :], request)[0], request.min_score)


class Searcher:
    """Embeds queries with the collection's own model and ranks stored items by similarity."""

    def __init__(self, embedder: Embedder, store: VectorStore) -> None:
        self.embedder = embedder
        self.store = store

    def check_model(self) -> None:
        """Refuse to query a collection built with another model (its vectors are incomparable)."""
        info = self.store.info()
        if info.model_id and info.model_id != self.embedder.model_id:
            raise ModelMismatchError(
                f"collection {info.name!r} was built with {info.model_id!r} but the query model "
                f"is {self.embedder.model_id!r}; set MMRAG_MODEL/MMRAG_PRETRAINED/"
                "MMRAG_CHECKPOINT to the collection's model or reindex it"
            )

    def search_text(self, query: str, request: SearchRequest | None = None) -> list[Hit]:
        """Hits for one text query."""
        return self.search_vector(self.embedder.embed_texts([query])[0], request)

    def search_image(self, rgb: np.ndarray, request: SearchRequest | None = None) -> list[Hit]:
        """Hits for one RGB uint8 query image."""
        return self.search_vector(self.embedder.embed_images([rgb])[0], request)

    def search_vector(self, vector: np.ndarray, request: SearchRequest | None = None) -> list[Hit]:
        """Hits for one unit query vector."""
        return search_page(self.store, vector, request or SearchRequest())
