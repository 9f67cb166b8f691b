"""Stores opened for reading by the CLI's read-only commands: nothing is created on the way.

``mmrag collections``, ``mmrag stats`` (and search, ask, eval) must not create a missing Milvus
Lite file or its folder; a missing file or collection is answered with what exists and what to
run instead.
"""

from __future__ import annotations

from retrieval.config import Settings
from retrieval.errors import CollectionNotFoundError
from retrieval.stores import is_local_uri, open_store
from retrieval.stores.base import VectorStore
from retrieval.stores.milvus_rows import lite_path


def open_existing_store(
    settings: Settings, collection: str | None = None, *, require_collection: bool = True
) -> VectorStore:
    """The store of ``collection`` (default: the configured one), which must already exist.

    Raises CollectionNotFoundError naming the collections that do exist, and never creates a
    Lite file: a missing file is reported before Milvus Lite would create it.
    """
    name = collection or settings.collection
    if is_local_uri(settings.uri):
        path = lite_path(settings.uri)
        if not path.is_file():
            raise CollectionNotFoundError(missing_message(name, str(path), None))
    store = open_store(
        settings.uri, name, token=settings.token, index_type=settings.index_type
    )
    if require_collection and not store.exists():
        existing = store.list_collections()
        store.close()
        where = str(lite_path(settings.uri)) if is_local_uri(settings.uri) else settings.uri
        raise CollectionNotFoundError(missing_message(name, where, existing))
    return store


def missing_message(name: str, where: str, existing: list[str] | None) -> str:
    """No collection ``name`` at ``where`` (``existing`` None: no such file): what to run."""
    if existing is None:
        there = "the file does not exist"
    elif existing:
        there = f"collections there: {', '.join(existing)}; choose one with --collection NAME"
    else:
        there = "it holds no collection"
    return f"no collection {name!r} at {where}; run mmrag ingest first ({there})"
