"""Query -> vector -> hits: the one search path of the API, the CLI, chat and eval.

A page of hits is a plain top-k search (``plain_search``: offset and filter in the store) or,
with ``diversity`` > 0, maximal marginal relevance over the top candidates (``mmr_search``);
either way hits below ``min_score`` are dropped (``above``). A text query may also be searched
by keyword (BM25 over the collection's text index) or by both, fused by Milvus (hybrid):
``resolve_mode`` picks the mode (hybrid where the collection has the text index, else vector)
and ``text_search_page`` runs it. ``Searcher`` embeds a query with the collection's own model
and runs that path (blocking, for the CLI and chat).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from retrieval.embedders.base import Embedder
from retrieval.errors import ConfigError, ModelMismatchError, TextIndexMissingError
from retrieval.limits import MAX_TOPK
from retrieval.mmr import mmr_order
from retrieval.stores.base import Fusion, VectorStore, missing_text_index_message
from retrieval.types import Hit

MMR_MIN_CANDIDATES = 50
MMR_CANDIDATE_FACTOR = 3
VECTOR, KEYWORD, HYBRID = "vector", "keyword", "hybrid"
MODES = (VECTOR, KEYWORD, HYBRID)


@dataclass(frozen=True)
class SearchRequest:
    """One page: size, start, a safe filter expression, a score floor and the MMR weight."""

    k: int = 10
    offset: int = 0
    expr: str | None = None
    min_score: float | None = None
    diversity: float = 0.0  # 0: plain ranking; up to 1: only spread results apart
    mode: str | None = None  # vector | keyword | hybrid; None: chosen by ``resolve_mode``
    fusion: Fusion = field(default_factory=Fusion)  # how hybrid fuses its two rankings


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


def resolve_mode(store: VectorStore, request: SearchRequest, *, text: bool) -> SearchRequest:
    """The request with the mode it runs in, or a ConfigError saying why it cannot run.

    Unset: hybrid for a text query on a collection with the text index (and no cosine floor
    or MMR, which rank by vector), else vector. Image queries are searched by vector only.
    """
    mode = request.mode
    if mode is not None and mode not in MODES:
        raise ConfigError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if not text:
        return image_mode(request)
    vector_only = request.min_score is not None or request.diversity > 0.0
    if mode is None:
        capable = store.capabilities.full_text and store.has_text_index()
        return replace(request, mode=HYBRID if capable and not vector_only else VECTOR)
    if mode == VECTOR:
        return request
    if vector_only:
        raise ConfigError(
            f"min_score and diversity rank by cosine similarity and apply to mode=vector only; "
            f"drop them for mode={mode}"
        )
    capabilities = store.capabilities
    if not capabilities.full_text:
        raise TextIndexMissingError(capabilities.full_text_missing)
    if not store.has_text_index():
        raise TextIndexMissingError(missing_text_index_message(store.collection, store.where))
    return request


def image_mode(request: SearchRequest) -> SearchRequest:
    """An image (or stored vector) query's request: vector mode, or a ConfigError."""
    if request.mode not in (None, VECTOR):
        raise ConfigError(
            f"an image query is searched by vector only; drop mode={request.mode} or search "
            "with a text query"
        )
    return replace(request, mode=VECTOR)


def keyword_page(store: VectorStore, text: str, request: SearchRequest) -> list[Hit]:
    """One page of BM25 hits for a text query (score: BM25)."""
    return store.keyword_search([text], request.k, offset=request.offset, expr=request.expr)[0]


def hybrid_page(
    store: VectorStore, vector: np.ndarray, text: str, request: SearchRequest
) -> list[Hit]:
    """One page of a text query's vector and BM25 rankings fused (score: the fusion's)."""
    row = np.asarray(vector, dtype=np.float32)[None, :]
    return store.hybrid_search(
        row, [text], request.k, offset=request.offset, expr=request.expr, fusion=request.fusion
    )[0]


def text_search_page(
    store: VectorStore, text: str, vector: np.ndarray | None, request: SearchRequest
) -> list[Hit]:
    """One page for a text query in the request's resolved mode (keyword needs no vector)."""
    if request.mode == KEYWORD:
        return keyword_page(store, text, request)
    if vector is None:
        raise ConfigError(f"mode {request.mode} needs the query's vector")
    if request.mode == HYBRID:
        return hybrid_page(store, vector, text, request)
    return search_page(store, vector, request)


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
        """Hits for one text query, in the request's mode (default: see ``resolve_mode``)."""
        resolved = self.resolve(query, request or SearchRequest())
        vector = None if resolved.mode == KEYWORD else self.embedder.embed_texts([query])[0]
        return text_search_page(self.store, query, vector, resolved)

    def resolve(self, query: str, request: SearchRequest) -> SearchRequest:
        """The request with its mode resolved for a text query (a ConfigError for bad ones)."""
        if not query.strip():
            raise ConfigError("the query is empty (or only whitespace); type what to look for")
        return resolve_mode(self.store, request, text=True)

    def search_image(self, rgb: np.ndarray, request: SearchRequest | None = None) -> list[Hit]:
        """Hits for one RGB uint8 query image (by vector: a keyword mode is a ConfigError)."""
        resolved = resolve_mode(self.store, request or SearchRequest(), text=False)
        return self.search_vector(self.embedder.embed_images([rgb])[0], resolved)

    def search_vector(self, vector: np.ndarray, request: SearchRequest | None = None) -> list[Hit]:
        """Hits for one unit query vector."""
        return search_page(self.store, vector, request or SearchRequest())
