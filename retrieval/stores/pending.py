"""A Milvus Lite file that does not exist yet, as the API server sees it: nothing is created.

``mmrag serve`` on a missing ``.db`` starts anyway: ``/ready`` and searches say there is no
collection yet (and what to run), and once ``mmrag ingest`` has created the file the store opens
it on the next call, so the server needs no restart.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from retrieval.errors import CollectionNotFoundError
from retrieval.stores.base import Capabilities, VectorStore
from retrieval.stores.existing import missing_collection_message

LITE_CAPABILITIES = Capabilities(embedded=True, alias_shadows_collection=True)


def _forwarded(name: str) -> Callable[..., Any]:
    """A method that runs ``name`` on the opened store (CollectionNotFoundError until then)."""

    def call(self: PendingLiteStore, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.opened(), name)(*args, **kwargs)

    call.__name__ = name
    call.__doc__ = f"``{name}`` of the store, once its file exists."
    return call


class PendingLiteStore(VectorStore):
    """A reader's store of a Lite file not created yet; opens it (never creates it) when it is."""

    def __init__(self, collection: str, where: str, opener: Callable[[], VectorStore]) -> None:
        self.collection = collection
        self.where = where  # the resolved .db path
        self._opener = opener  # opens the existing file (CollectionNotFoundError while missing)
        self._store: VectorStore | None = None
        self._lock = threading.Lock()

    def _try_open(self) -> VectorStore | None:
        """The store of the file, opened on the first call that finds it (None: still missing)."""
        with self._lock:
            if self._store is None:
                try:
                    self._store = self._opener()
                except CollectionNotFoundError:
                    return None
            return self._store

    def opened(self) -> VectorStore:
        """The opened store, or CollectionNotFoundError saying there is no collection yet."""
        store = self._try_open()
        if store is None:
            raise CollectionNotFoundError(
                missing_collection_message(self.collection, self.where, None)
            )
        return store

    @property
    def capabilities(self) -> Capabilities:
        """Milvus Lite's, until the file exists (then the opened store's)."""
        store = self._try_open()
        return LITE_CAPABILITIES if store is None else store.capabilities

    def exists(self) -> bool:
        """False while the file does not exist."""
        store = self._try_open()
        return False if store is None else store.exists()

    def list_collections(self) -> list[str]:
        """None while the file does not exist."""
        store = self._try_open()
        return [] if store is None else store.list_collections()

    def close(self) -> None:
        """Close the opened store, if the file was ever opened."""
        with self._lock:
            store, self._store = self._store, None
        if store is not None:
            store.close()

    ensure_collection = _forwarded("ensure_collection")
    info = _forwarded("info")
    upsert = _forwarded("upsert")
    add = _forwarded("add")
    flush = _forwarded("flush")
    existing_ids = _forwarded("existing_ids")
    search = _forwarded("search")
    has_text_index = _forwarded("has_text_index")
    text_columns = _forwarded("text_columns")
    keyword_search = _forwarded("keyword_search")
    hybrid_search = _forwarded("hybrid_search")
    range_search = _forwarded("range_search")
    get = _forwarded("get")
    iterate = _forwarded("iterate")
    delete = _forwarded("delete")
    iterate_where = _forwarded("iterate_where")
    delete_where = _forwarded("delete_where")
    count = _forwarded("count")
    drop = _forwarded("drop")
    wait_until_indexed = _forwarded("wait_until_indexed")
    describe_target = _forwarded("describe_target")
    model_spec = _forwarded("model_spec")
    resolve = _forwarded("resolve")
    refresh = _forwarded("refresh")
    set_alias = _forwarded("set_alias")
    create_alias = _forwarded("create_alias")
    alter_alias = _forwarded("alter_alias")
    describe_alias = _forwarded("describe_alias")
    drop_alias = _forwarded("drop_alias")
    list_aliases = _forwarded("list_aliases")
    rename = _forwarded("rename")
