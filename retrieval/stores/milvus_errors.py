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


def translate(exc: MilvusException | grpc.RpcError, action: str, where: str) -> StoreError:
    """Map a pymilvus or gRPC failure to mmrag's store errors."""
    if isinstance(exc, grpc.RpcError):
        code = exc.code() if callable(getattr(exc, "code", None)) else None
        details = exc.details() if callable(getattr(exc, "details", None)) else str(exc)
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            return StoreUnavailableError(f"Milvus at {where} did not answer {action}: {details}")
        return StoreError(f"Milvus {action} failed at {where}: {details}")
    message = exc.message or str(exc)
    if isinstance(exc, ConnectionConfigException):
        return StoreUnavailableError(f"cannot open Milvus at {where}: {message}")
    code = exc.code
    if code == ErrorCode.COLLECTION_NOT_FOUND or is_not_found(message):
        return CollectionNotFoundError(f"{action}: {message} (at {where})")
    unavailable_codes = (
        CONNECT_FAILED,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
    )
    if code in unavailable_codes or "server unavailable" in message.lower():
        return StoreUnavailableError(f"Milvus at {where} is unavailable ({action}): {message}")
    return StoreError(f"Milvus {action} failed at {where}: {message}")
