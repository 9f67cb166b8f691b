"""The API follows the collection it reads: after a reindex moves the alias, it switches models.

At startup the model is chosen by ``retrieval.follow_model``'s rule, shared with the CLI: a moved
name is followed to its collection's recorded model, a plain collection keeps the configured one.
The configured collection may be an alias (a server's, or a Lite pointer file's). Every
``FOLLOW_INTERVAL_S`` the service resolves it; when it names a collection built with another
model, that model is loaded from the spec the collection records (off the model thread, while
the old one keeps serving), then the service swaps both at once. Each query remembers the
``QueryModel`` that embedded it (a context variable of the request's task) and searches that
model's own collection, so a query is never compared with vectors of another model, even while
the switch happens; the old collection must live a little longer (``mmrag reindex`` keeps it).
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

from retrieval.api.batching import LruCache, TextBatcher
from retrieval.config import Settings
from retrieval.embedders.base import Embedder
from retrieval.follow_model import followed_embedder, read_target
from retrieval.model_spec import embedder_for_spec
from retrieval.stores.base import VectorStore
from retrieval.stores.milvus import MilvusStore, Target

__all__ = [
    "FOLLOW_INTERVAL_S",
    "MOVE_RETRIES",
    "MOVE_RETRY_S",
    "QueryModel",
    "current_query",
    "embedder_for_spec",
    "initial_embedder",
    "read_target",
    "repoint",
]

FOLLOW_INTERVAL_S = 2.0
MOVE_RETRIES = 10  # a search of the configured name that finds no collection is retried...
MOVE_RETRY_S = 0.2  # ...this long after: reindex renames a collection, then aliases its name


@dataclass(frozen=True)
class QueryModel:
    """The model queries are embedded with now, its micro-batcher, and the collection it built."""

    embedder: Embedder
    batcher: TextBatcher
    cache: LruCache
    collection: str | None  # the concrete collection behind the configured name; None: unknown


current_query: ContextVar[QueryModel | None] = ContextVar("mmrag_query_model", default=None)


def repoint(store: VectorStore) -> None:
    """Let the default store read where the name points now (after the query model switched)."""
    if isinstance(store, MilvusStore):
        store.refresh()


def initial_embedder(settings: Settings, target: Target | None) -> Embedder | None:
    """The model to start with, by ``retrieval.follow_model``'s rule (None: the settings' model).

    Only a moved name (an alias or Lite pointer naming another collection) whose collection
    records another model is followed; a plain collection keeps the configured model (and its
    searches get the model check's 409). A recorded model that cannot be loaded raises a
    ``ModelMismatchError`` unless the configured model is the same one.
    """
    return followed_embedder(settings, target)
