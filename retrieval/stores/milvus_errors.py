"""pymilvus and gRPC failures as mmrag's store errors."""

from __future__ import annotations

import grpc
from pymilvus.exceptions import ConnectionConfigException, ErrorCode, MilvusException

from retrieval.errors import CollectionNotFoundError, StoreError, StoreUnavailableError

CONNECT_FAILED = 2  # pymilvus Status.CONNECT_FAILED: the channel never became ready


def is_not_found(message: str) -> bool:
    """Whether a Milvus message says the collection does not exist."""
    text = message.lower()
    return "collection not found" in text or "can't find collection" in text


# The store's calls as a user reads them ("{name}": the collection, quoted); no client method
# name reaches a message.
ACTIONS = {
    "connect": "connecting",
    "list_collections": "listing the collections",
    "has_collection": "looking up collection {name}",
    "create_collection": "creating collection {name}",
    "load_collection": "loading collection {name}",
    "describe_collection": "reading the schema of collection {name}",
    "describe_index": "reading the index of collection {name}",
    "list_loaded_segments": "reading the loaded segments of collection {name}",
    "drop_collection": "dropping collection {name}",
    "flush": "flushing collection {name}",
    "delete": "deleting from collection {name}",
    "count": "counting the items of collection {name}",
    "query": "reading items of collection {name}",
    "search": "searching collection {name}",
    "insert": "writing to collection {name}",
    "upsert": "writing to collection {name}",
    "describe_alias": "reading an alias of collection {name}",
    "alias": "pointing an alias at collection {name}",
    "drop_alias": "dropping an alias of collection {name}",
    "list_aliases": "listing the aliases of collection {name}",
    "rename_collection": "renaming collection {name}",
}


def doing(action: str, collection: str | None) -> str:
    """What the store was doing, in words (never the client method's name)."""
    phrase = ACTIONS.get(action, action.replace("_", " "))
    return phrase.format(name=repr(collection) if collection else "")


def no_collection_message(name: str, where: str) -> str:
    """The message for a collection that does not exist (at a call, after it was opened)."""
    return f"no collection {name!r} at {where}; run mmrag ingest first"


def translate(
    exc: MilvusException | grpc.RpcError, action: str, where: str, collection: str | None = None
) -> StoreError:
    """Map a pymilvus or gRPC failure to mmrag's store errors, in words a user can act on."""
    what = doing(action, collection)
    if isinstance(exc, grpc.RpcError):
        code = exc.code() if callable(getattr(exc, "code", None)) else None
        details = exc.details() if callable(getattr(exc, "details", None)) else str(exc)
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            return StoreUnavailableError(f"Milvus at {where} did not answer ({what}): {details}")
        return StoreError(f"Milvus at {where} failed ({what}): {details}")
    message = exc.message or str(exc)
    if isinstance(exc, ConnectionConfigException):
        return StoreUnavailableError(f"cannot open Milvus at {where}: {message}")
    code = exc.code
    if code == ErrorCode.COLLECTION_NOT_FOUND or is_not_found(message):
        if collection is None:
            return CollectionNotFoundError(f"no such collection at {where} ({what}): {message}")
        return CollectionNotFoundError(no_collection_message(collection, where))
    unavailable_codes = (
        CONNECT_FAILED,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
    )
    if code in unavailable_codes or "server unavailable" in message.lower():
        return StoreUnavailableError(f"Milvus at {where} is unavailable ({what}): {message}")
    return StoreError(f"Milvus at {where} failed ({what}): {message}")
