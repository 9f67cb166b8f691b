"""The API follows the collection it reads: after a reindex moves the alias, it switches models.

At startup the model is chosen by ``retrieval.follow_model``'s rule, shared with the CLI: a moved
name is followed to its collection's recorded model, a plain collection keeps the configured one.
The configured collection may be an alias (a server's, or a Lite pointer file's). Every
``FOLLOW_INTERVAL_S`` the ``ModelFollower`` resolves it; when it names a collection built with
another model, that model is loaded from the spec the collection records (off the model thread,
while the old one keeps serving), then ``QueryModels`` swaps model and collection at once. Each
query vector carries the model that embedded it and that model's own collection
(``QueryVector``), so a query is never compared with vectors of another model, even while the
switch happens; the old collection must live a little longer (``mmrag reindex`` keeps it).
"""

from __future__ import annotations

import asyncio
import logging

from retrieval.api.query_models import QueryModel, QueryModels
from retrieval.api.store_gateway import StoreGateway
from retrieval.config import Settings
from retrieval.errors import MmragError
from retrieval.follow_model import read_target
from retrieval.model_spec import embedder_for_spec
from retrieval.stores.base import VectorStore

log = logging.getLogger(__name__)

FOLLOW_INTERVAL_S = 2.0


def repoint(store: VectorStore) -> None:
    """Let the default store read where the name points now (after the query model switched)."""
    store.refresh()


class ModelFollower:
    """Resolves the configured name every ``FOLLOW_INTERVAL_S`` and follows it when it moves."""

    def __init__(self, settings: Settings, models: QueryModels, stores: StoreGateway) -> None:
        self.settings = settings
        self.models = models
        self.stores = stores
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start following (call from the event loop)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._follow())

    def stop(self) -> None:
        """Stop following."""
        if self._task is not None:
            self._task.cancel()

    async def _follow(self) -> None:
        while True:
            await asyncio.sleep(FOLLOW_INTERVAL_S)
            current = self.models.loaded
            if current is None:
                continue
            try:
                await self.follow_once(current)
            except MmragError as exc:
                log.warning("could not follow collection %s: %s", self.settings.collection, exc)

    async def follow_once(self, current: QueryModel) -> None:
        """Resolve the configured name once; swap model and collection when they changed."""
        target = await self.stores.run(read_target, self.stores.default)
        if target is None or target.collection == current.collection:
            return
        if target.model_id == current.embedder.model_id:
            self.models.repoint(target.collection)
            await self.stores.run(repoint, self.stores.default)
            return
        if target.spec is None:  # cannot load it: searches get the model check's 409
            self.models.repoint(target.collection)
            log.warning("%s now reads %s, built with %s, which records no model spec: set "
                        "MMRAG_MODEL to it", self.settings.collection, target.collection,
                        target.model_id)
            return
        log.info("collection %s now reads %s (model %s): loading it",
                 self.settings.collection, target.collection, target.model_id)
        embedder = await asyncio.to_thread(
            embedder_for_spec, self.settings, target.spec, target.model_id
        )
        await self.models.switch(embedder, target.collection)
        await self.stores.run(repoint, self.stores.default)
        log.info("query model switched to %s", embedder.model_id)
