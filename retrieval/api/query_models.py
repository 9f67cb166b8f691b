"""The API's query model: load it, warm it, embed queries with it, swap it when it is followed.

Model calls run on one model thread, text queries micro-batched through one ``TextBatcher``
(with its LRU cache) per model, every call in the CPU lane. The model is chosen at startup by
``retrieval.follow_model``'s rule and encodes one text of each short length before serving
(``warm_text_shapes``). Embedding a query returns a ``QueryVector``: the vector together with
the model that made it and the collection that model reads, so a search never compares it
with another model's vectors (see ``retrieval.api.follow`` for the switch itself).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from retrieval.api.batching import LruCache, TextBatcher, warm_text_shapes
from retrieval.api.errors import ApiError
from retrieval.api.lane import CpuLane, Step
from retrieval.api.metrics import ApiMetrics
from retrieval.api.threads import run_on
from retrieval.components import Components
from retrieval.config import Settings
from retrieval.embedders.base import Embedder
from retrieval.errors import MmragError, StoreError
from retrieval.follow_model import followed_embedder, read_target

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QueryModel:
    """A model queries are embedded with, its micro-batcher, and the collection it reads."""

    embedder: Embedder
    batcher: TextBatcher
    cache: LruCache
    collection: str | None  # the concrete collection behind the configured name; None: unknown


@dataclass(frozen=True)
class QueryVector:
    """A query's vector, the model that made it, and the collection that model was made for.

    ``collection`` is the concrete collection behind the configured name that the model reads
    (a search of the configured name goes there); None searches the name as the request gives it.
    """

    vector: np.ndarray
    embedder: Embedder
    collection: str | None = None


class QueryModels:
    """The current query model of one process, its model thread and its text micro-batchers."""

    def __init__(
        self,
        settings: Settings,
        components: Components,
        metrics: ApiMetrics,
        lane: CpuLane,
        io_executor: Executor,
    ) -> None:
        self.settings = settings
        self.components = components
        self.metrics = metrics
        self.lane = lane
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="mmrag-model")
        self._io = io_executor
        self._loading: asyncio.Future[QueryModel] | None = None
        self._current: QueryModel | None = None
        self._retired: list[TextBatcher] = []
        self._no_cache = LruCache(settings.query_cache_size)  # stats before a model is loaded
        self.warmed_texts = 0  # text shapes the query model encoded before serving

    # ----- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start loading the model in the model thread (call from the event loop)."""
        if self._loading is None:
            loop = asyncio.get_running_loop()
            self._loading = asyncio.ensure_future(loop.run_in_executor(self.executor, self._load))

    def _load(self) -> QueryModel:
        """Load the model the configured collection was built with (default: the settings')."""
        target = None
        try:
            target = read_target(self.components.store)
        except StoreError as exc:
            log.info("collection not readable yet, loading the configured model: %s", exc)
        embedder = followed_embedder(self.settings, target)
        if embedder is None:
            embedder = self.components.embedder
        collection = target.collection if target is not None else None
        self.warmed_texts = warm_text_shapes(embedder)
        self._current = self._model_for(embedder, collection)
        log.info("query model ready: %s", embedder.model_id)
        return self._current

    async def close(self) -> None:
        """Finish running batches and stop the model thread."""
        batchers = [*self._retired] + ([self._current.batcher] if self._current else [])
        for batcher in batchers:
            await batcher.close()
        if self._loading is not None and not self._loading.done():
            self._loading.cancel()
        self.executor.shutdown(wait=False, cancel_futures=True)

    # ----- the current model -----------------------------------------------------------------

    @property
    def state(self) -> tuple[str, str | None]:
        """('loading' | 'ok' | 'failed', error message)."""
        if self._loading is None or not self._loading.done():
            return "loading", None
        if self._loading.cancelled():
            return "failed", "model loading was cancelled"
        exc = self._loading.exception()
        if exc is not None:
            return "failed", str(exc) or type(exc).__name__
        return "ok", None

    @property
    def loaded(self) -> QueryModel | None:
        """The current model once loading finished (None while loading or after a failure)."""
        return self._current if self.state[0] == "ok" else None

    async def current(self) -> QueryModel:
        """The current model, once loaded (503 when it failed to load)."""
        self.start()
        assert self._loading is not None
        try:
            loaded = await asyncio.shield(self._loading)
        except MmragError as exc:
            raise ApiError(503, f"query model not loaded: {exc}", type="model_unavailable") from exc
        return self._current or loaded

    async def embedder(self) -> Embedder:
        """The model queries are embedded with now, once loaded (503 when it failed to load)."""
        return (await self.current()).embedder

    @property
    def model_id(self) -> str | None:
        """The id of the model queries are embedded with now (None until it is loaded)."""
        return self._current.embedder.model_id if self._current is not None else None

    @property
    def cache(self) -> LruCache:
        """The current model's text-query cache."""
        return self._current.cache if self._current is not None else self._no_cache

    # ----- following a moved name (see retrieval.api.follow) ---------------------------------

    def repoint(self, collection: str) -> None:
        """Keep the model; its name now reads ``collection``."""
        if self._current is not None:
            self._current = replace(self._current, collection=collection)

    async def switch(self, embedder: Embedder, collection: str) -> None:
        """Warm ``embedder`` on the model thread, then embed new queries with it for
        ``collection`` (queries already embedded keep their own model and collection)."""
        self.warmed_texts = await run_on(self.executor, warm_text_shapes, embedder)
        if self._current is not None:
            self._retired.append(self._current.batcher)
        self._current = self._model_for(embedder, collection)

    # ----- embedding -------------------------------------------------------------------------

    async def embed_text(self, text: str) -> QueryVector:
        """The query vector of a text (micro-batched, LRU-cached)."""
        model = await self.current()
        vector = await model.batcher.embed(text)
        return QueryVector(vector, model.embedder, model.collection)

    async def embed_image(self, rgb: np.ndarray) -> QueryVector:
        """The query vector of an RGB image (prepared on an I/O thread, embedded on the model's)."""
        model = await self.current()
        embedder = model.embedder
        prepared = await run_on(self._io, embedder.prepare_image, rgb)
        async with self.lane.hold(Step.MODEL):
            vector = await run_on(self.executor, self._embed_prepared, embedder, prepared)
        return QueryVector(vector, embedder, model.collection)

    async def as_query(self, vector: np.ndarray) -> QueryVector:
        """A given vector (e.g. a stored item's) as a query of the current model, searching
        the collection the request names."""
        return QueryVector(vector, await self.embedder())

    def _model_for(self, embedder: Embedder, collection: str | None) -> QueryModel:
        """A model with a fresh micro-batcher and query cache."""
        cache = LruCache(self.settings.query_cache_size)
        batcher = TextBatcher(
            functools.partial(self._embed_texts, embedder),
            self.executor,
            window_s=self.settings.batch_window_ms / 1000.0,
            max_batch=self.settings.max_query_batch,
            cache=cache,
            on_lookup=self._count_lookup,
            lane=self.lane,
        )
        return QueryModel(embedder, batcher, cache, collection)

    def _embed_texts(self, embedder: Embedder, texts: Sequence[str]) -> np.ndarray:
        """One model call for a micro-batch (runs in the model thread)."""
        started = time.perf_counter()
        vectors = embedder.embed_texts(texts)
        self.metrics.embed_seconds.observe(time.perf_counter() - started, "text")
        self.metrics.embed_batch.observe(len(texts), "text")
        return vectors

    def _embed_prepared(self, embedder: Embedder, prepared: Any) -> np.ndarray:
        started = time.perf_counter()
        vector = embedder.embed_prepared([prepared])[0]
        self.metrics.embed_seconds.observe(time.perf_counter() - started, "image")
        self.metrics.embed_batch.observe(1, "image")
        return vector

    def _count_lookup(self, hit: bool) -> None:
        self.metrics.cache.inc("hit" if hit else "miss")
