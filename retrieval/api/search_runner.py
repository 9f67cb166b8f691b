"""The API's searches: one page of hits for a query vector, batched, checked and retried.

A page is ``retrieval.search``'s plain ranking or MMR with its score floor, as everywhere. Plain
searches of the same model, collection and page are micro-batched into one store call
(``SearchBatcher``): while a search call runs, new searches wait for its end, then go as one
call. Each collection is checked once per connection and model to have been built with the
query's model (409 otherwise). A search of the configured name that was found before and now
finds no collection is retried for a moment: ``mmrag reindex`` may be turning it into an alias.
Keyword (BM25) and hybrid searches of text queries go to the store one by one, unbatched.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from retrieval.api.batching import SearchBatcher
from retrieval.api.metrics import ApiMetrics
from retrieval.api.query_models import QueryVector
from retrieval.api.store_gateway import StoreGateway
from retrieval.embedders.base import Embedder
from retrieval.search import (
    HYBRID,
    Searcher,
    SearchRequest,
    above,
    hybrid_page,
    image_mode,
    keyword_page,
    mmr_search,
    plain_search,
    resolve_mode,
)
from retrieval.stores.base import VectorStore
from retrieval.types import Hit

T = TypeVar("T")

# While a search call runs, new searches wait for its end (then go as one call), at most this
# long: Milvus Lite answers 16 queries in one call 3.7x faster than one by one (FLAT, 100k x
# 512: 83 ms vs 16 x 19 ms), so small calls started meanwhile only slow every query down.
STORE_BUSY_WAIT_S = 1.0


@dataclass(frozen=True)
class SearchKey:
    """What one batched store search depends on besides the query vectors."""

    embedder: Embedder  # compared by identity: vectors of different models never share a call
    collection: str
    may_be_moving: bool  # the configured name, seen before: retried while reindex aliases it
    k: int
    offset: int
    expr: str | None
    with_vectors: bool
    dim: int


class SearchRunner:
    """Runs the API's searches through the store gateway (see the module docstring)."""

    def __init__(self, stores: StoreGateway, metrics: ApiMetrics, max_batch: int) -> None:
        self.stores = stores
        self.metrics = metrics
        self.batcher: SearchBatcher[SearchKey] = SearchBatcher(
            self._search_batch, window_s=STORE_BUSY_WAIT_S, max_batch=max_batch
        )
        self._checked: set[tuple[int, str, str]] = set()  # (connection, collection, model id)
        self._existed: set[str] = set()  # collections searched once: a 404 may be a reindex move

    async def resolve(
        self, collection: str | None, request: SearchRequest, *, text: bool
    ) -> SearchRequest:
        """The request with its search mode resolved against the collection (422 if bad)."""
        if not text:
            return image_mode(request)
        name = self.stores.name(collection)
        may_be_moving = name == self.stores.settings.collection and name in self._existed
        return await self._call_search(
            name, may_be_moving, lambda store: resolve_mode(store, request, text=True)
        )

    async def keyword(self, text: str, collection: str | None, request: SearchRequest) -> list[Hit]:
        """One page of BM25 hits for a text query (no query vector, no model check)."""
        name = self.stores.name(collection)
        may_be_moving = name == self.stores.settings.collection and name in self._existed
        hits = await self._call_search(
            name, may_be_moving, lambda store: self._timed(keyword_page, store, text, request)
        )
        self._existed.add(name)
        return hits

    async def search(
        self,
        query: QueryVector,
        collection: str | None,
        request: SearchRequest,
        *,
        text: str | None = None,
    ) -> list[Hit]:
        """One page of hits for a query vector (plain ranking, micro-batched, or MMR), or for
        a text query's vector and text fused (``request.mode`` hybrid)."""
        configured = self.stores.name(collection) == self.stores.settings.collection
        if configured and query.collection:
            collection = query.collection  # the concrete collection the query's model reads
        name = self.stores.name(collection)
        may_be_moving = configured and name in self._existed  # never seen: 404 at once
        await self.stores.retry_moved(may_be_moving, lambda: self.check_model(name, query.embedder))
        self._existed.add(name)
        if request.mode == HYBRID and text is not None:
            return await self._call_search(
                name, may_be_moving,
                lambda store: self._timed(hybrid_page, store, query.vector, text, request),
            )
        if request.diversity > 0.0:
            return await self._call_search(
                name, may_be_moving,
                lambda store: self._timed(mmr_search, store, query.vector, request),
            )
        row = np.asarray(query.vector, dtype=np.float32)
        if row.ndim == 1 and np.isfinite(row).all():
            key = SearchKey(query.embedder, name, may_be_moving, request.k, request.offset,
                            request.expr, with_vectors=False, dim=row.shape[0])
            hits = await self.batcher.search(key, row)
        else:  # a malformed vector must not fail the batch it would join: the store refuses it
            found = await self._call_search(
                name, may_be_moving,
                lambda store: self._timed(plain_search, store, row[None, :], request),
            )
            hits = found[0]
        return above(hits, request.min_score)

    async def check_model(self, collection: str | None, embedder: Embedder) -> None:
        """Refuse (409) a collection built with another model; checked once per connection."""
        name = self.stores.name(collection)
        key = (self.stores.generation, name, embedder.model_id)
        if key in self._checked:
            return
        await self.stores.call(name, lambda store: Searcher(embedder, store).check_model())
        self._checked.add(key)

    async def close(self) -> None:
        """Finish the running batches."""
        await self.batcher.close()

    async def _search_batch(self, key: SearchKey, matrix: np.ndarray) -> list[list[Hit]]:
        """One store call for a micro-batch of query vectors that share ``key``."""
        request = SearchRequest(k=key.k, offset=key.offset, expr=key.expr)

        def run(store: VectorStore) -> list[list[Hit]]:
            return self._timed(plain_search, store, matrix, request, with_vectors=key.with_vectors)

        return await self._call_search(key.collection, key.may_be_moving, run)

    async def _call_search(
        self, name: str, may_be_moving: bool, fn: Callable[[VectorStore], T]
    ) -> T:
        """A search through the gateway, retried a few times while the name is being moved."""
        return await self.stores.retry_moved(
            may_be_moving, lambda: self.stores.call(name, fn, search=True)
        )

    def _timed(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one store search, observing its time (runs on a store thread)."""
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self.metrics.search_seconds.observe(time.perf_counter() - started)
