"""The API follows the collection it reads: after a reindex moves the alias, it switches models.

The configured collection may be an alias (a server's, or a Lite pointer file's). Every
``FOLLOW_INTERVAL_S`` the service resolves it; when it names a collection built with another
model, that model is loaded from the spec the collection records (off the model thread, while
the old one keeps serving), then the service swaps both at once. Each query remembers the
``QueryModel`` that embedded it (a context variable of the request's task) and searches that
model's own collection, so a query is never compared with vectors of another model, even while
the switch happens; the old collection must live a little longer (``mmrag reindex`` keeps it).
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from dataclasses import dataclass

from retrieval.api.batching import LruCache, TextBatcher
from retrieval.config import Settings
from retrieval.embedders.base import Embedder
from retrieval.errors import CollectionNotFoundError, MmragError
from retrieval.model_spec import embedder_for_spec, same_spec
from retrieval.stores.base import VectorStore
from retrieval.stores.milvus import MilvusStore, Target

log = logging.getLogger(__name__)

FOLLOW_INTERVAL_S = 2.0
MOVE_RETRIES = 3  # a search of the configured name that finds no collection is retried...
MOVE_RETRY_S = 0.2  # ...this long after: reindex renames a collection, then aliases its name


@dataclass(frozen=True)
class QueryModel:
    """The model queries are embedded with now, its micro-batcher, and the collection it built."""

    embedder: Embedder
    batcher: TextBatcher
    cache: LruCache
    collection: str | None  # the concrete collection behind the configured name; None: unknown


current_query: ContextVar[QueryModel | None] = ContextVar("mmrag_query_model", default=None)


def read_target(store: VectorStore) -> Target | None:
    """Where the configured name points now (blocking); None when it cannot tell."""
    if not isinstance(store, MilvusStore):
        return None
    try:
        return store.describe_target()
    except CollectionNotFoundError:
        return None


def repoint(store: VectorStore) -> None:
    """Let the default store read where the name points now (after the query model switched)."""
    if isinstance(store, MilvusStore):
        store.refresh()


def initial_embedder(settings: Settings, target: Target | None) -> Embedder | None:
    """The model a collection records when the settings name another one (None: use settings')."""
    if target is None or target.spec is None or same_spec(settings, target.spec):
        return None
    try:
        return embedder_for_spec(settings, target.spec, target.model_id)
    except MmragError as exc:
        log.warning(
            "collection %s records model %s but it cannot be loaded (%s); using %s",
            target.collection, target.model_id, exc, settings.model,
        )
        return None
