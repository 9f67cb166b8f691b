"""The API's long-lived state: components, model and store threads, recovery, search.

Blocking work never runs on the event loop: model calls go to one model thread (text queries
micro-batched through ``TextBatcher``), Milvus calls to a small store pool (plain searches with
the same model, collection and page micro-batched into one call through ``SearchBatcher``),
decoding and file reads to an I/O pool. Model calls take turns in one ``CpuLane``, and so do
searches when the store runs on the same machine (Milvus Lite, a loopback server). A store
call that finds Milvus unreachable triggers one reconnect attempt (at most one per
``RECONNECT_INTERVAL_S``) and is retried once on the new connection; until Milvus answers,
requests get 503 and the process keeps serving. The query model encodes one text of each short
length before serving (``warm_text_shapes``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import numpy as np

from retrieval.api import follow
from retrieval.api.batching import LruCache, SearchBatcher, TextBatcher, warm_text_shapes
from retrieval.api.errors import ApiError
from retrieval.api.images import ThumbnailCache, default_thumbnail_dir
from retrieval.api.lane import CpuLane, Step, searches_share_lane
from retrieval.api.metrics import ApiMetrics
from retrieval.components import Components, build_components
from retrieval.config import Settings
from retrieval.embedders.base import Embedder
from retrieval.errors import CollectionNotFoundError, MmragError, StoreError, StoreUnavailableError
from retrieval.mmr import mmr_order
from retrieval.search import Searcher
from retrieval.stores import open_store
from retrieval.stores.base import VectorStore
from retrieval.stores.offline import OfflineStore
from retrieval.types import CollectionInfo, Hit, Record

log = logging.getLogger(__name__)
T = TypeVar("T")

STORE_THREADS = 8
# While a search call runs, new searches wait for its end (then go as one call), at most this
# long: Milvus Lite answers 16 queries in one call 3.7x faster than one by one (FLAT, 100k x
# 512: 83 ms vs 16 x 19 ms), so small calls started meanwhile only slow every query down.
STORE_BUSY_WAIT_S = 1.0
IO_THREADS = 4
RECONNECT_INTERVAL_S = 1.0
READY_TIMEOUT_S = 5.0
MAX_EXTRA_STORES = 32
KEYS_TTL_S = 300.0
KEYS_MIN_REFRESH_S = 5.0
KEYS_SAMPLE_ROWS = 2000
MMR_MIN_CANDIDATES = 50
MMR_CANDIDATE_FACTOR = 3
MILVUS_MAX_TOPK = 16384


@dataclass(frozen=True)
class SearchParams:
    """One page request: size, start, safe expression, score floor and MMR weight."""

    k: int = 10
    offset: int = 0
    expr: str | None = None
    min_score: float | None = None
    diversity: float = 0.0


@dataclass(frozen=True)
class SearchKey:
    """What one batched store search depends on besides the query vectors."""

    embedder: Embedder  # compared by identity: vectors of different models never share a call
    collection: str
    retry: bool  # the configured name: retried while `mmrag reindex` turns it into an alias
    k: int
    offset: int
    expr: str | None
    with_vectors: bool
    dim: int


@dataclass
class _Keys:
    """Metadata keys sampled from a collection and when."""

    keys: frozenset[str]
    at: float

    def answers(self, wanted: set[str]) -> bool:
        """Fresh and has every wanted key, or too recent to sample again."""
        age = time.monotonic() - self.at
        return (age < KEYS_TTL_S and wanted <= self.keys) or age < KEYS_MIN_REFRESH_S


def sample_metadata_keys(store: VectorStore, rows: int = KEYS_SAMPLE_ROWS) -> frozenset[str]:
    """Top-level metadata keys seen in up to ``rows`` stored records."""
    keys: set[str] = set()
    seen = 0
    for batch in store.iterate(batch_size=min(500, rows), with_vectors=False):
        for record in batch:
            keys.update(k for k in record.metadata if isinstance(k, str))
        seen += len(batch)
        if seen >= rows:
            break
    return frozenset(keys)


class Service:
    """Everything a request handler needs, shared by all requests of one process."""

    def __init__(self, settings: Settings, components: Components, metrics: ApiMetrics) -> None:
        self.settings = settings
        self.components = components
        self.metrics = metrics
        self.model_executor = ThreadPoolExecutor(1, thread_name_prefix="mmrag-model")
        self.store_executor = ThreadPoolExecutor(STORE_THREADS, thread_name_prefix="mmrag-store")
        self.io_executor = ThreadPoolExecutor(IO_THREADS, thread_name_prefix="mmrag-io")
        self.lane = CpuLane()  # model calls; searches too when the store shares these cores
        shared = searches_share_lane(settings.search_lane, settings.uri)
        self._search_lane = self.lane if shared else None
        self.cache = LruCache(settings.query_cache_size)
        self.batcher = self._new_batcher(self._embed_texts, self.cache)
        self.search_batcher: SearchBatcher[SearchKey] = SearchBatcher(
            self._search_batch, window_s=STORE_BUSY_WAIT_S, max_batch=settings.max_query_batch
        )
        self.thumbnails = ThumbnailCache(
            default_thumbnail_dir(settings.uri, settings.thumbnail_dir)
        )
        self._model: asyncio.Future[Embedder] | None = None
        self._extra: dict[str, VectorStore] = {}
        self._extra_lock = threading.Lock()
        self._checked: set[str] = set()
        self._existed: set[str] = set()  # collections searched once: a 404 may be a reindex move
        self._keys: dict[str, _Keys] = {}
        self._generation = 0
        self._last_reconnect = 0.0
        self._reconnect_lock = asyncio.Lock()
        self._keys_lock = asyncio.Lock()
        self._query: follow.QueryModel | None = None  # see retrieval/api/follow.py
        self._follower: asyncio.Task[None] | None = None
        self._retired: list[TextBatcher] = []
        self.warmed_texts = 0  # text shapes the query model encoded before serving

    def _new_batcher(
        self, embed: Callable[[Sequence[str]], np.ndarray], cache: LruCache
    ) -> TextBatcher:
        """A micro-batcher of text queries for one model."""
        return TextBatcher(
            embed,
            self.model_executor,
            window_s=self.settings.batch_window_ms / 1000.0,
            max_batch=self.settings.max_query_batch,
            cache=cache,
            on_lookup=self._count_lookup,
            lane=self.lane,
        )

    def _batcher_for(self, embedder: Embedder) -> tuple[TextBatcher, LruCache]:
        """A fresh micro-batcher and query cache bound to one (followed) model."""
        cache = LruCache(self.settings.query_cache_size)
        embed = functools.partial(self._embed_texts, embedder=embedder)
        return self._new_batcher(embed, cache), cache

    # ----- lifecycle ---------------------------------------------------------------------

    @classmethod
    def open(cls, settings: Settings, metrics: ApiMetrics) -> Service:
        """Build components; a store that cannot be reached yet becomes an OfflineStore."""
        try:
            components = build_components(settings)
        except StoreError as exc:
            log.warning("vector store not reachable at startup (will retry): %s", exc)
            offline = OfflineStore(settings.collection, str(exc))
            components = Components(settings=settings, store=offline)
        return cls(settings, components, metrics)

    def start(self) -> None:
        """Start loading the model in the model thread (call from the event loop)."""
        if self._model is None:
            loop = asyncio.get_running_loop()
            self._model = asyncio.ensure_future(
                loop.run_in_executor(self.model_executor, self._load_model)
            )
            self._follower = loop.create_task(self._follow())

    def _load_model(self) -> Embedder:
        """Load the model the configured collection was built with (default: the settings')."""
        target = None
        try:
            target = follow.read_target(self.components.store)
        except StoreError as exc:
            log.info("collection not readable yet, loading the configured model: %s", exc)
        embedder = follow.initial_embedder(self.settings, target)
        if embedder is None:
            embedder = self.components.embedder
            batcher, cache = self.batcher, self.cache
        else:
            batcher, cache = self._batcher_for(embedder)
            self.batcher, self.cache = batcher, cache
        collection = target.collection if target is not None else None
        self.warmed_texts = warm_text_shapes(embedder)
        self._query = follow.QueryModel(embedder, batcher, cache, collection)
        log.info("query model ready: %s", embedder.model_id)
        return embedder

    async def _follow(self) -> None:
        """Switch the query model when the configured collection (an alias) moves."""
        while True:
            await asyncio.sleep(follow.FOLLOW_INTERVAL_S)
            if self._model is None or not self._model.done() or self._query is None:
                continue
            try:
                await self._follow_once(self._query)
            except MmragError as exc:
                log.warning("could not follow collection %s: %s", self.settings.collection, exc)

    async def _follow_once(self, current: follow.QueryModel) -> None:
        """Resolve the configured name once; swap model and collection when they changed."""
        target = await _run(self.store_executor, follow.read_target, self.components.store)
        if target is None or target.collection == current.collection:
            return
        if target.model_id == current.embedder.model_id:
            self._query = replace(current, collection=target.collection)
            await _run(self.store_executor, follow.repoint, self.components.store)
            return
        if target.spec is None:  # cannot load it: searches get the model check's 409
            self._query = replace(current, collection=target.collection)
            log.warning("%s now reads %s, built with %s, which records no model spec: set "
                        "MMRAG_MODEL to it", self.settings.collection, target.collection,
                        target.model_id)
            return
        log.info("collection %s now reads %s (model %s): loading it",
                 self.settings.collection, target.collection, target.model_id)
        embedder = await asyncio.to_thread(
            follow.embedder_for_spec, self.settings, target.spec, target.model_id
        )
        self.warmed_texts = await _run(self.model_executor, warm_text_shapes, embedder)
        batcher, cache = self._batcher_for(embedder)
        self._retired.append(self.batcher)
        self._query = follow.QueryModel(embedder, batcher, cache, target.collection)
        self.batcher, self.cache = batcher, cache
        self._checked.discard(self.settings.collection)
        await _run(self.store_executor, follow.repoint, self.components.store)
        log.info("query model switched to %s", embedder.model_id)

    async def close(self) -> None:
        """Finish running batches, stop the threads and release the stores."""
        if self._follower is not None:
            self._follower.cancel()
        for batcher in [*self._retired, self.batcher]:
            await batcher.close()
        await self.search_batcher.close()
        if self._model is not None and not self._model.done():
            self._model.cancel()
        for executor in (self.model_executor, self.store_executor, self.io_executor):
            executor.shutdown(wait=False, cancel_futures=True)
        with self._extra_lock:
            extras, self._extra = list(self._extra.values()), {}
        await asyncio.to_thread(_close_all, [*extras, self.components.store])

    # ----- model -----------------------------------------------------------------------

    @property
    def model_state(self) -> tuple[str, str | None]:
        """('loading' | 'ok' | 'failed', error message)."""
        if self._model is None or not self._model.done():
            return "loading", None
        if self._model.cancelled():
            return "failed", "model loading was cancelled"
        exc = self._model.exception()
        if exc is not None:
            return "failed", str(exc) or type(exc).__name__
        return "ok", None

    async def embedder(self) -> Embedder:
        """The query model, once loaded (503 when it failed to load)."""
        self.start()
        assert self._model is not None
        try:
            loaded = await asyncio.shield(self._model)
        except MmragError as exc:
            raise ApiError(503, f"query model not loaded: {exc}", type="model_unavailable") from exc
        return self._query.embedder if self._query is not None else loaded

    @property
    def query_model_id(self) -> str | None:
        """The id of the model queries are embedded with now (None until it is loaded)."""
        return self._query.embedder.model_id if self._query is not None else None

    def _embed_texts(self, texts: Sequence[str], embedder: Embedder | None = None) -> np.ndarray:
        """One model call for a micro-batch (runs in the model thread)."""
        started = time.perf_counter()
        vectors = (embedder or self.components.embedder).embed_texts(texts)
        self.metrics.embed_seconds.observe(time.perf_counter() - started, "text")
        self.metrics.embed_batch.observe(len(texts), "text")
        return vectors

    def _embed_prepared(self, prepared: Any, embedder: Embedder | None = None) -> np.ndarray:
        started = time.perf_counter()
        vector = (embedder or self.components.embedder).embed_prepared([prepared])[0]
        self.metrics.embed_seconds.observe(time.perf_counter() - started, "image")
        self.metrics.embed_batch.observe(1, "image")
        return vector

    def _count_lookup(self, hit: bool) -> None:
        self.metrics.cache.inc("hit" if hit else "miss")

    async def embed_text(self, text: str) -> np.ndarray:
        """The query vector of a text (micro-batched, LRU-cached)."""
        await self.embedder()
        query = self._query
        if query is None:
            return await self.batcher.embed(text)
        follow.current_query.set(query)  # search() then reads this model's collection
        return await query.batcher.embed(text)

    async def embed_image(self, rgb: np.ndarray) -> np.ndarray:
        """The query vector of an RGB image (prepared on an I/O thread, embedded on the model's)."""
        embedder = await self.embedder()
        query = self._query
        if query is not None:
            follow.current_query.set(query)  # search() then reads this model's collection
            embedder = query.embedder
        prepared = await self.run_io(embedder.prepare_image, rgb)
        async with self.lane.hold(Step.MODEL):
            return await _run(self.model_executor, self._embed_prepared, prepared, embedder)

    async def run_io(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking file or image work on the I/O pool."""
        return await _run(self.io_executor, fn, *args)

    # ----- stores ----------------------------------------------------------------------

    def _name(self, collection: str | None) -> str:
        return collection or self.settings.collection

    def _open(self, name: str) -> VectorStore:
        settings = self.settings
        return open_store(
            settings.uri, name, token=settings.token, index_type=settings.index_type
        )

    def _store(self, name: str) -> VectorStore:
        """The open store of a collection (blocking: opens extra collections on first use)."""
        if name == self.settings.collection:
            return self.components.store
        with self._extra_lock:
            store = self._extra.get(name)
        if store is not None:
            return store
        store = self._open(name)
        try:
            exists = store.exists()
        except StoreError:
            _close_quietly(store)
            raise
        if not exists:
            _close_quietly(store)
            raise CollectionNotFoundError(f"collection {name!r} does not exist")
        with self._extra_lock:
            if len(self._extra) >= MAX_EXTRA_STORES:
                _close_quietly(self._extra.pop(next(iter(self._extra))))
            current = self._extra.setdefault(name, store)
        if current is not store:
            _close_quietly(store)
        return current

    async def call_store(
        self, collection: str | None, fn: Callable[[VectorStore], T], *, search: bool = False
    ) -> T:
        """Run ``fn(store)`` on a store thread (a ``search`` in the CPU lane when the store
        shares these cores); reconnect once, outside the lane, if Milvus was unreachable."""
        name = self._name(collection)
        generation = self._generation
        try:
            return await self._on_store_thread(name, fn, search)
        except StoreUnavailableError:
            self.metrics.store_errors.inc()
            if not await self._reconnect(generation):
                raise
        return await self._on_store_thread(name, fn, search)

    async def _on_store_thread(
        self, name: str, fn: Callable[[VectorStore], T], search: bool
    ) -> T:
        lane = self._search_lane if search else None
        async with lane.hold(Step.SEARCH) if lane is not None else contextlib.nullcontext():
            return await _run(self.store_executor, lambda: fn(self._store(name)))

    async def _reconnect(self, seen_generation: int) -> bool:
        """Reopen every store (new Milvus connections); False when it is too soon or fails."""
        async with self._reconnect_lock:
            if self._generation != seen_generation:
                return True  # another request reconnected meanwhile
            now = time.monotonic()
            if now - self._last_reconnect < RECONNECT_INTERVAL_S:
                return False
            self._last_reconnect = now
            ok = await _run(self.store_executor, self._reopen)
            self._checked.clear()
            if ok:
                self._generation += 1
            return ok

    def _reopen(self) -> bool:
        """Close all stores and open the default one again (Milvus Lite restarts its server)."""
        with self._extra_lock:
            extras, self._extra = list(self._extra.values()), {}
        _close_all([*extras, self.components.store])
        name = self.settings.collection
        try:
            self.components.store = self._open(name)
        except StoreError as exc:
            self.components.store = OfflineStore(name, str(exc))
            log.warning("vector store still unreachable: %s", exc)
            return False
        log.info("reconnected to the vector store")
        return True

    async def info(self, collection: str | None) -> CollectionInfo:
        """Count, dimension, model and index of a collection."""
        return await self.call_store(collection, lambda store: store.info())

    async def check_model(self, collection: str | None, embedder: Embedder) -> None:
        """Refuse (409) a collection built with another model; checked once per connection."""
        name = self._name(collection)
        if name in self._checked:
            return
        await self.call_store(name, lambda store: Searcher(embedder, store).check_model())
        self._checked.add(name)

    async def list_collections(self) -> list[str]:
        """Names of the collections behind the configured URI."""

        return await self.call_store(None, lambda store: store.list_collections())

    async def metadata_keys(self, collection: str | None, wanted: Iterable[str]) -> frozenset[str]:
        """Metadata keys known in a collection (sampled, cached; refreshed on a miss)."""
        name = self._name(collection)
        wanted = set(wanted)
        entry = self._keys.get(name)
        if entry is not None and entry.answers(wanted):
            return entry.keys
        async with self._keys_lock:  # one sampling at a time; waiters reuse its result
            entry = self._keys.get(name)
            if entry is not None and entry.answers(wanted):
                return entry.keys
            keys = await self.call_store(name, sample_metadata_keys)
            self._keys[name] = _Keys(keys, time.monotonic())
            return keys

    async def get_record(self, collection: str | None, item_id: str) -> Record | None:
        """The stored record with this id, or None."""
        records = await self.call_store(collection, lambda store: store.get([item_id]))
        return records[0] if records else None

    # ----- search ----------------------------------------------------------------------

    async def search(
        self, vector: np.ndarray, collection: str | None, params: SearchParams
    ) -> list[Hit]:
        """One page of hits for a query vector (plain ranking, micro-batched, or MMR)."""
        embedder = await self.embedder()
        query = follow.current_query.get()  # the model that embedded this request's query
        retry = self._name(collection) == self.settings.collection
        if query is not None and query.collection and retry:
            embedder, collection = query.embedder, query.collection
        name = self._name(collection)
        retry = retry and name in self._existed  # a never-seen collection is 404 at once
        await self._retry_moved(retry, lambda: self.check_model(name, embedder))
        self._existed.add(name)
        if params.diversity > 0.0:
            return await self._call_search(
                name, retry, lambda store: self._timed(_mmr_search, store, vector, params)
            )
        row = np.asarray(vector, dtype=np.float32)
        if row.ndim == 1 and np.isfinite(row).all():
            key = SearchKey(embedder, name, retry, params.k, params.offset, params.expr,
                            with_vectors=False, dim=row.shape[0])
            hits = await self.search_batcher.search(key, row)
        else:  # a malformed vector must not fail the batch it would join: the store refuses it
            found = await self._call_search(
                name, retry, lambda store: self._timed(_plain_search, store, row, params)
            )
            hits = found[0]
        return _above(hits, params.min_score)

    async def _search_batch(self, key: SearchKey, matrix: np.ndarray) -> list[list[Hit]]:
        """One store call for a micro-batch of query vectors that share ``key``."""

        def run(store: VectorStore) -> list[list[Hit]]:
            return self._timed(
                store.search, matrix, key.k,
                offset=key.offset, expr=key.expr, with_vectors=key.with_vectors,
            )

        return await self._call_search(key.collection, key.retry, run)

    async def _call_search(self, name: str, retry: bool, fn: Callable[[VectorStore], T]) -> T:
        """A search through ``call_store``, retried a few times while the configured name is
        being moved."""
        return await self._retry_moved(retry, lambda: self.call_store(name, fn, search=True))

    async def _retry_moved(self, retry: bool, call: Callable[[], Awaitable[T]]) -> T:
        """Await ``call()``; while the configured name is missing, retry (up to ~2 s)."""
        for _ in range(follow.MOVE_RETRIES if retry else 0):
            try:
                return await call()
            except CollectionNotFoundError:  # `mmrag reindex` may be turning it into an alias
                await asyncio.sleep(follow.MOVE_RETRY_S)
        return await call()

    def _timed(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one store search, observing its time (runs on a store thread)."""
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self.metrics.search_seconds.observe(time.perf_counter() - started)


def _above(hits: list[Hit], min_score: float | None) -> list[Hit]:
    """The hits scoring at least ``min_score`` (all when it is None)."""
    return hits if min_score is None else [h for h in hits if h.score >= min_score]


def _plain_search(store: VectorStore, vector: np.ndarray, p: SearchParams) -> list[list[Hit]]:
    """One unbatched top-k search (offset and filter; min_score is applied by the caller)."""
    return store.search(vector[None, :], p.k, offset=p.offset, expr=p.expr)


def _mmr_search(store: VectorStore, vector: np.ndarray, p: SearchParams) -> list[Hit]:
    """MMR over the top candidates (above min_score), then the page."""
    wanted = p.offset + p.k
    fetch = min(MILVUS_MAX_TOPK, max(MMR_MIN_CANDIDATES, MMR_CANDIDATE_FACTOR * wanted))
    query = np.asarray(vector, dtype=np.float32)[None, :]
    candidates = store.search(query, fetch, expr=p.expr, with_vectors=True)[0]
    candidates = _above(candidates, p.min_score)
    candidates = [h for h in candidates if h.vector is not None and h.vector.size]
    if not candidates:
        return []
    matrix = np.stack([np.asarray(h.vector, dtype=np.float32) for h in candidates])
    order = mmr_order(query[0], matrix, wanted, p.diversity)
    return [candidates[i] for i in order][p.offset : p.offset + p.k]


async def _run(executor: Executor, fn: Callable[..., T], *args: Any) -> T:
    """Await a blocking call on an executor."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(executor, functools.partial(fn, *args))


def _close_quietly(store: VectorStore) -> None:
    """Close a store, ignoring a connection that is already gone."""
    try:
        store.close()
    except MmragError as exc:
        log.debug("closing %r: %s", store, exc)


def _close_all(stores: Iterable[VectorStore]) -> None:
    """Close every store, ignoring connections already gone."""
    for store in stores:
        _close_quietly(store)
