"""Vector stores: pick Milvus Lite (a file path) or a Milvus server (a URL) from the URI."""

from __future__ import annotations

from retrieval.errors import ConfigError
from retrieval.stores.base import VectorStore

_SERVER_SCHEMES = ("http://", "https://", "tcp://", "unix:")

__all__ = ["VectorStore", "is_local_uri", "open_store"]


def is_local_uri(uri: str) -> bool:
    """Whether the URI names a Milvus Lite file (``./mmrag.db``) rather than a server."""
    return not uri.strip().lower().startswith(_SERVER_SCHEMES)


def open_store(
    uri: str,
    collection: str,
    *,
    token: str | None = None,
    index_type: str = "auto",
    create: bool = True,
) -> VectorStore:
    """Open the collection on Milvus Lite or a Milvus server (pymilvus is imported lazily).

    ``create=False``: open only what exists (a missing Lite file is a CollectionNotFoundError,
    never created); ``retrieval.stores.existing`` adds the readers' check of the collection.
    A Lite file that a running ``mmrag serve`` owns is used through it (``stores/owner.py``).
    """
    if not uri or not uri.strip():
        raise ConfigError(
            "Milvus URI is empty (set MMRAG_URI to a .db path or http(s)://host:port)"
        )
    if is_local_uri(uri):
        served = _served_by_owner(uri, collection, index_type)
        if served is not None:
            return served
    from retrieval.stores.milvus import MilvusStore

    return MilvusStore(uri, collection, token=token, index_type=index_type, create=create)


def _served_by_owner(uri: str, collection: str, index_type: str) -> VectorStore | None:
    """The collection through the live ``mmrag serve`` that owns this Lite file (None: no live
    owner published one, or it does not answer: the file is opened as before)."""
    from retrieval.stores.milvus_rows import lite_path
    from retrieval.stores.owner_client import OwnerClient
    from retrieval.stores.owner_file import live_owner

    try:
        db = lite_path(uri)
    except ConfigError:
        return None  # the Milvus store says what is wrong with the path
    owner = live_owner(db)
    if owner is None:
        return None
    client = OwnerClient(owner)
    if not client.ping():
        return None
    from retrieval.stores.owner import OwnerStore

    return OwnerStore(owner, collection, index_type=index_type, client=client)
