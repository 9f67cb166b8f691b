"""The API's long-lived state: its parts, built once per process, started and closed together.

Blocking work never runs on the event loop: model calls go to one model thread
(``QueryModels``), store calls to a small store pool (``StoreGateway``, reconnecting), searches
through ``SearchRunner`` (micro-batched, checked, retried), decoding and file reads to an I/O
pool (decoding within ``PixelBudget``, a budget of decoded-pixel bytes). Model calls take turns
in one ``CpuLane``, and so do searches when the store runs on the same machine (Milvus Lite, a
loopback server). ``ModelFollower`` follows a reindexed name; ``FieldCatalogue`` samples the
fields filters may name; ``IngestJobs`` runs ``POST /ingest``'s jobs on worker threads.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from retrieval.api.field_catalogue import FieldCatalogue
from retrieval.api.follow import ModelFollower
from retrieval.api.images import ThumbnailCache, default_thumbnail_dir
from retrieval.api.ingest.jobs import IngestJobs
from retrieval.api.lane import CpuLane, searches_share_lane
from retrieval.api.metrics import ApiMetrics
from retrieval.api.pixel_budget import PixelBudget
from retrieval.api.query_models import QueryModels
from retrieval.api.search_runner import SearchRunner
from retrieval.api.store_gateway import StoreGateway
from retrieval.api.threads import run_on
from retrieval.components import Components, build_components
from retrieval.config import Settings
from retrieval.errors import StoreError
from retrieval.stores import is_local_uri, lite_lock, open_store
from retrieval.stores.base import VectorStore
from retrieval.stores.milvus_rows import lite_path
from retrieval.stores.offline import OfflineStore
from retrieval.stores.owner_calls import OwnerSessions

log = logging.getLogger(__name__)
T = TypeVar("T")

IO_THREADS = 4
READY_TIMEOUT_S = 5.0


class Service:
    """Everything a request handler needs, shared by all requests of one process."""

    def __init__(self, settings: Settings, components: Components, metrics: ApiMetrics) -> None:
        self.settings = settings
        self.components = components  # shared with the gateway, which swaps its store on reconnect
        self.metrics = metrics
        self.io_executor = ThreadPoolExecutor(IO_THREADS, thread_name_prefix="mmrag-io")
        self.lane = CpuLane()  # model calls; searches too when the store shares these cores
        shared = searches_share_lane(settings.search_lane, settings.uri)
        self.stores = StoreGateway(settings, components, metrics, self.lane if shared else None)
        self.models = QueryModels(settings, components, metrics, self.lane, self.io_executor)
        self.searches = SearchRunner(self.stores, metrics, settings.max_query_batch)
        self.fields = FieldCatalogue(self.stores)
        self.follower = ModelFollower(settings, self.models, self.stores)
        self.thumbnails = ThumbnailCache(
            default_thumbnail_dir(settings.uri, settings.thumbnail_dir)
        )
        self.pixels = PixelBudget(settings.decode_budget_mb * 2**20, settings.decode_wait_s)
        self.ingests = IngestJobs(settings, self.stores, self.models, self.lane, shared)
        self.owner_sessions = OwnerSessions(self._open_for_command)  # routers/owner.py

    @property
    def owned_db(self) -> Path | None:
        """The Milvus Lite file this process holds mmrag's lock on (None: a server URI, or a
        file it does not own: missing yet, or owned by another process)."""
        if not is_local_uri(self.settings.uri):
            return None
        db = lite_path(self.settings.uri)
        return db if lite_lock.holds(db) else None

    def _open_for_command(self, collection: str, index_type: str) -> VectorStore:
        """A store on the served file for another mmrag command (``stores/owner_calls``)."""
        settings = self.settings
        return open_store(settings.uri, collection, token=settings.token, index_type=index_type,
                          create=False)

    @classmethod
    def open(cls, settings: Settings, metrics: ApiMetrics) -> Service:
        """Build components; a store that cannot be reached yet becomes an OfflineStore."""
        try:
            components = build_components(settings, access="open")  # creates nothing
        except StoreError as exc:
            log.warning("vector store not reachable at startup (will retry): %s", exc)
            offline = OfflineStore(settings.collection, str(exc))
            components = Components(settings=settings, store=offline)
        return cls(settings, components, metrics)

    def start(self) -> None:
        """Start loading the model and following the collection (call from the event loop)."""
        self.models.start()
        self.follower.start()
        self.ingests.start()

    async def close(self) -> None:
        """Stop ingest jobs between batches, finish running batches, stop the threads and
        release the stores."""
        await self.ingests.close()
        self.follower.stop()
        await self.models.close()
        await self.searches.close()
        self.io_executor.shutdown(wait=False, cancel_futures=True)
        await asyncio.to_thread(self.owner_sessions.close_all)
        await self.stores.close()

    async def run_io(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking file or image work on the I/O pool."""
        return await run_on(self.io_executor, fn, *args)
