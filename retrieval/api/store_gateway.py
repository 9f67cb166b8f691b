"""The API's way to the vector store: open stores, run calls on store threads, reconnect.

Every store call runs on a small store pool (``STORE_THREADS``); a search holds the CPU lane
around its store call when the store shares these cores (Milvus Lite, a loopback server). The
configured collection's store is opened at startup (an ``OfflineStore`` while Milvus cannot be
reached); other collections open on first use, at most ``MAX_EXTRA_STORES`` at a time. A call
that finds Milvus unreachable triggers one reconnect attempt (at most one per
``RECONNECT_INTERVAL_S``, outside the lane) and is retried once on the new connection; until
Milvus answers, calls raise ``StoreUnavailableError`` (the API's 503).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from retrieval.api.lane import CpuLane, Step
from retrieval.api.metrics import ApiMetrics
from retrieval.api.threads import run_on
from retrieval.components import Components
from retrieval.config import Settings
from retrieval.errors import CollectionNotFoundError, MmragError, StoreError, StoreUnavailableError
from retrieval.stores import open_store
from retrieval.stores.base import VectorStore
from retrieval.stores.lite_lock import kept_across
from retrieval.stores.offline import OfflineStore
from retrieval.types import CollectionInfo, Record

log = logging.getLogger(__name__)
T = TypeVar("T")

STORE_THREADS = 8
MOVE_RETRIES = 10  # a call on the configured name that finds no collection is retried...
MOVE_RETRY_S = 0.2  # ...this long after: reindex renames a collection, then aliases its name
RECONNECT_INTERVAL_S = 1.0
MAX_EXTRA_STORES = 32


class StoreGateway:
    """Open stores by collection name and run blocking calls on them, reconnecting when lost."""

    def __init__(
        self,
        settings: Settings,
        components: Components,
        metrics: ApiMetrics,
        search_lane: CpuLane | None,
    ) -> None:
        self.settings = settings
        self.components = components  # its store is swapped on reconnect: read it per use
        self.metrics = metrics
        self.search_lane = search_lane  # held around searches when the store shares our cores
        self.executor = ThreadPoolExecutor(STORE_THREADS, thread_name_prefix="mmrag-store")
        self._extra: dict[str, VectorStore] = {}
        self._extra_lock = threading.Lock()
        self._generation = 0
        self._seen_names: set[str] = set()  # the configured name, once it answered
        self._last_reconnect = 0.0
        self._reconnect_lock = asyncio.Lock()

    @property
    def generation(self) -> int:
        """Successful reconnects so far: what was checked on an older connection is stale."""
        return self._generation

    def name(self, collection: str | None) -> str:
        """The collection a request means (None: the configured one)."""
        return collection or self.settings.collection

    @property
    def default(self) -> VectorStore:
        """The configured collection's store (read it per use: a reconnect replaces it)."""
        return self.components.store

    async def call(
        self, collection: str | None, fn: Callable[[VectorStore], T], *, search: bool = False
    ) -> T:
        """Run ``fn(store)`` on a store thread (a ``search`` in the CPU lane when the store
        shares these cores); reconnect once, outside the lane, if Milvus was unreachable."""
        name = self.name(collection)
        generation = self._generation
        try:
            return await self._on_store_thread(name, fn, search)
        except StoreUnavailableError:
            self.metrics.store_errors.inc()
            if not await self._reconnect(generation):
                raise
        return await self._on_store_thread(name, fn, search)

    async def info(self, collection: str | None) -> CollectionInfo:
        """Count, dimension, model and index of a collection. The configured name, once seen,
        is retried for a moment while it is missing: ``mmrag reindex`` may be moving it (its
        old collection dropped before the follower has repointed the default store)."""
        name = self.name(collection)
        return await self.retry_moved(name in self._seen_names, lambda: self._info(name))

    async def retry_moved(self, may_be_moving: bool, call: Callable[[], Awaitable[T]]) -> T:
        """Await ``call()``; while a name that may be moving is missing, retry (up to ~2 s)."""
        for _ in range(MOVE_RETRIES if may_be_moving else 0):
            try:
                return await call()
            except CollectionNotFoundError:  # `mmrag reindex` may be turning it into an alias
                await asyncio.sleep(MOVE_RETRY_S)
        return await call()

    async def _info(self, name: str) -> CollectionInfo:
        info = await self.call(name, lambda store: store.info())
        if name == self.settings.collection:
            self._seen_names.add(name)
        return info

    async def list_collections(self) -> list[str]:
        """Names of the collections behind the configured URI."""
        return await self.call(None, lambda store: store.list_collections())

    async def get_record(self, collection: str | None, item_id: str) -> Record | None:
        """The stored record with this id, or None."""
        records = await self.call(collection, lambda store: store.get([item_id]))
        return records[0] if records else None

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """Run blocking store work that picks its own store (e.g. reading a name's target)."""
        return await run_on(self.executor, fn, *args)

    async def _on_store_thread(
        self, name: str, fn: Callable[[VectorStore], T], search: bool
    ) -> T:
        lane = self.search_lane if search else None
        async with lane.hold(Step.SEARCH) if lane is not None else contextlib.nullcontext():
            return await run_on(self.executor, lambda: fn(self._store(name)))

    def _open(self, name: str) -> VectorStore:
        settings = self.settings
        return open_store(  # never creates a Lite file: the API only reads
            settings.uri, name, token=settings.token, index_type=settings.index_type,
            create=False,
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

    async def _reconnect(self, seen_generation: int) -> bool:
        """Reopen every store (new Milvus connections); False when it is too soon or fails."""
        async with self._reconnect_lock:
            if self._generation != seen_generation:
                return True  # another request reconnected meanwhile
            now = time.monotonic()
            if now - self._last_reconnect < RECONNECT_INTERVAL_S:
                return False
            self._last_reconnect = now
            ok = await run_on(self.executor, self._reopen)
            if ok:
                self._generation += 1
            return ok

    def _reopen(self) -> bool:
        """Close all stores and open the default one again (Milvus Lite restarts its server)."""
        name = self.settings.collection
        try:
            with kept_across(self.settings.uri):  # no other process takes a Lite file meanwhile
                self._close_stores()
                self.components.store = self._open(name)
        except StoreError as exc:
            self.components.store = OfflineStore(name, str(exc))
            log.warning("vector store still unreachable: %s", exc)
            return False
        log.info("reconnected to the vector store")
        return True

    def _close_stores(self) -> None:
        with self._extra_lock:
            extras, self._extra = list(self._extra.values()), {}
        _close_all([*extras, self.components.store])

    async def close(self) -> None:
        """Stop the store threads and release every store."""
        self.executor.shutdown(wait=False, cancel_futures=True)
        await asyncio.to_thread(self._close_stores)


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
