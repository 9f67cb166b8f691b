"""The vector store contract shared by every backend (Milvus Lite, Milvus server)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from retrieval.types import CollectionInfo, Hit, Record


class VectorStore(ABC):
    """One collection of unit vectors with their fields; ids are unique (upsert semantics)."""

    collection: str

    @abstractmethod
    def ensure_collection(
        self, dim: int, model_id: str, *, spec: Mapping[str, Any] | None = None
    ) -> None:
        """Create the collection for this model, or check that an existing one matches it.

        ``spec`` says how to load the model again (``retrieval.model_spec``); it is recorded
        with a new collection.
        """

    @abstractmethod
    def list_collections(self) -> list[str]:
        """Names of every collection behind this store's URI."""

    @abstractmethod
    def exists(self) -> bool:
        """Whether the collection exists."""

    @abstractmethod
    def info(self) -> CollectionInfo:
        """Count, dimension, model and index of the collection."""

    @abstractmethod
    def upsert(self, records: Sequence[Record]) -> int:
        """Insert or replace records by id (one batched call); returns how many were written."""

    def add(self, records: Sequence[Record]) -> int:
        """Write records whose ids the caller has just checked are not stored (ingest).

        Backends may skip the replace-by-id work of ``upsert`` here; this default upserts.
        """
        return self.upsert(records)

    @abstractmethod
    def flush(self) -> None:
        """Make written rows durable and quickly searchable."""

    @abstractmethod
    def existing_ids(self, ids: Sequence[str]) -> set[str]:
        """The subset of ids already stored (checked in batches)."""

    @abstractmethod
    def search(
        self,
        vectors: np.ndarray,
        k: int = 10,
        *,
        offset: int = 0,
        expr: str | None = None,
        with_vectors: bool = False,
    ) -> list[list[Hit]]:
        """Top-k hits per query vector by inner product; expr is an already-safe Milvus filter."""

    @abstractmethod
    def get(self, ids: Sequence[str], *, with_vectors: bool = False) -> list[Record]:
        """Stored records for these ids (missing ids are skipped)."""

    @abstractmethod
    def iterate(
        self, batch_size: int = 1000, *, with_vectors: bool = True
    ) -> Iterator[list[Record]]:
        """Every stored record, in batches (for migrate and reindex)."""

    @abstractmethod
    def delete(self, ids: Iterable[str]) -> None:
        """Remove these ids."""

    @abstractmethod
    def count(self) -> int:
        """Number of stored rows."""

    @abstractmethod
    def drop(self) -> None:
        """Delete the whole collection."""

    @abstractmethod
    def close(self) -> None:
        """Release the connection."""

    def __enter__(self) -> VectorStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
