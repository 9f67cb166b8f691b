"""Stores opened for reading by the CLI's read-only commands: nothing is created on the way.

``mmrag collections``, ``mmrag stats`` (and search, ask, eval) must not create a missing Milvus
Lite file or its folder; a missing file or collection is answered with what exists and what to
run instead.
"""

from __future__ import annotations

from retrieval.config import Settings
from retrieval.stores.base import VectorStore
from retrieval.stores.existing import missing_collection_message
from retrieval.stores.existing import open_existing_store as _open


def open_existing_store(
    settings: Settings, collection: str | None = None, *, require_collection: bool = True
) -> VectorStore:
    """The store of ``collection`` (default: the configured one), which must already exist.

    Raises CollectionNotFoundError naming the collections that do exist, and never creates a
    Lite file (``retrieval.stores.existing``: the store layer's read-only open).
    """
    return _open(
        settings.uri, collection or settings.collection, token=settings.token,
        index_type=settings.index_type, require_collection=require_collection,
    )


def missing_message(name: str, where: str, existing: list[str] | None) -> str:
    """No collection ``name`` at ``where`` (``existing`` None: no such file): what to run."""
    return missing_collection_message(name, where, existing)
