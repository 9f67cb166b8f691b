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
    """
    if not uri or not uri.strip():
        raise ConfigError(
            "Milvus URI is empty (set MMRAG_URI to a .db path or http(s)://host:port)"
        )
    from retrieval.stores.milvus import MilvusStore

    return MilvusStore(uri, collection, token=token, index_type=index_type, create=create)
