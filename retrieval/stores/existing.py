"""Opening a store for reading only: nothing is created on the way, and what is missing is said.

``mmrag search``, ``ask``, ``eval``, ``stats`` and ``collections`` read a collection that must
already exist; a missing Milvus Lite file (or folder) is reported before Milvus Lite would create
it, a missing collection names the collections that do exist, and (where a reader needs items)
an empty collection says it is empty. Every message says what to run next.
"""

from __future__ import annotations

from retrieval.errors import CollectionEmptyError, CollectionNotFoundError
from retrieval.stores import open_store
from retrieval.stores.base import VectorStore


def open_existing_store(
    uri: str,
    collection: str,
    *,
    token: str | None = None,
    index_type: str = "auto",
    require_collection: bool = True,
    require_items: bool = False,
) -> VectorStore:
    """The store of an existing ``collection`` at ``uri``, opened without creating anything.

    Raises CollectionNotFoundError (no such file, or no such collection: the message lists the
    collections there) and, with ``require_items``, CollectionEmptyError.
    """
    store = open_store(uri, collection, token=token, index_type=index_type, create=False)
    opened = False
    try:
        if (require_collection or require_items) and not store.exists():
            existing = store.list_collections()
            raise CollectionNotFoundError(missing_collection_message(collection, store.where,
                                                                     existing))
        if require_items and store.count() == 0:
            raise CollectionEmptyError(empty_collection_message(collection, store.where))
        opened = True
    finally:
        if not opened:
            store.close()
    return store


def missing_collection_message(name: str, where: str, existing: list[str] | None) -> str:
    """No collection ``name`` at ``where`` (``existing`` None: no such file): what exists, and
    what to run."""
    if existing is None:
        there = "the file does not exist"
    elif existing:
        there = f"collections there: {', '.join(existing)}; choose one with --collection NAME"
    else:
        there = "it holds no collection"
    return f"no collection {name!r} at {where}; run mmrag ingest first ({there})"


def empty_collection_message(name: str, where: str) -> str:
    """The message for a collection with no items yet."""
    return (
        f"collection {name!r} at {where} is empty; add images with mmrag ingest FOLDER "
        f"(--collection {name})"
    )
