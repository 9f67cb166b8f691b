"""The vector store contract shared by every backend (Milvus Lite, Milvus server)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from retrieval.errors import StoreError, TextIndexMissingError
from retrieval.types import CollectionInfo, Hit, Record


@dataclass(frozen=True)
class Target:
    """The concrete collection behind a name (an alias resolved) and the model it was built with."""

    collection: str
    model_id: str
    dim: int
    spec: dict[str, Any] | None


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do differently from another, fixed when the store connects."""

    embedded: bool  # the data is a local file served on this machine (Milvus Lite)
    # An alias may carry the name of an existing collection and wins over it (Lite pointer
    # files); False: the name must be free, so a real collection is renamed before aliasing.
    alias_shadows_collection: bool
    # Writes to the collection may come from several processes at once (a Milvus server; a Lite
    # file served by `mmrag serve`, written through it and by it), so an ingest re-checks ids
    # under a lock before writing (ingest/write_lock.py).
    shared_writers: bool = False
    # BM25 full-text search (keyword and hybrid modes) on collections with the text index;
    # ``full_text_missing`` says why not where it is False (the server's version).
    full_text: bool = False
    full_text_missing: str = ""


@dataclass(frozen=True)
class Fusion:
    """How a hybrid search fuses its vector and keyword rankings (Milvus rerankers)."""

    ranker: str = "rrf"  # "rrf": reciprocal rank fusion; "weighted": weighted scores
    rrf_k: int = 60
    weights: tuple[float, float] = (0.5, 0.5)  # (vector, keyword), for "weighted"


RRF = Fusion()  # the default: reciprocal rank fusion, k = 60


def missing_text_index_message(collection: str, where: str) -> str:
    """What to do when a collection has no text index: the command that adds it."""
    return (
        f"collection {collection!r} at {where} has no text index, so keyword and hybrid "
        "search cannot run on it; add one without re-embedding with "
        f"`mmrag reindex --add-text-index --collection {collection}`, or search with "
        "mode=vector"
    )


class VectorStore(ABC):
    """One collection of unit vectors with their fields; ids are unique (upsert semantics).

    ``collection`` is the configured name, which may be an alias: reads follow it to the
    concrete collection it names (see ``resolve``, ``describe_target`` and ``refresh``).
    """

    collection: str
    where: str  # where the store lives, for messages (never a password)

    @property
    @abstractmethod
    def capabilities(self) -> Capabilities:
        """What this backend can do (chosen at connect time)."""

    @abstractmethod
    def ensure_collection(
        self,
        dim: int,
        model_id: str,
        *,
        spec: Mapping[str, Any] | None = None,
        text_columns: Sequence[str] | None = None,
    ) -> None:
        """Create the collection for this model, or check that an existing one matches it.

        ``spec`` says how to load the model again (``retrieval.model_spec``); it is recorded
        with a new collection. ``text_columns``: metadata columns a new collection's text index
        holds beside the caption and file name (where the backend has full-text search).
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

    def has_text_index(self) -> bool:
        """Whether the collection has the BM25 text index (keyword and hybrid search)."""
        return False

    def text_columns(self) -> tuple[str, ...]:
        """The metadata columns the text index holds besides the caption and file name."""
        return ()

    def keyword_search(
        self, texts: Sequence[str], k: int = 10, *, offset: int = 0, expr: str | None = None
    ) -> list[list[Hit]]:
        """Top-k hits per text query by BM25 over the text index (score: BM25)."""
        raise TextIndexMissingError(missing_text_index_message(self.collection, self.where))

    def hybrid_search(
        self,
        vectors: np.ndarray,
        texts: Sequence[str],
        k: int = 10,
        *,
        offset: int = 0,
        expr: str | None = None,
        fusion: Fusion = RRF,
    ) -> list[list[Hit]]:
        """Top-k hits per (vector, text) pair, the two rankings fused (score: the fusion's)."""
        raise TextIndexMissingError(missing_text_index_message(self.collection, self.where))

    @abstractmethod
    def range_search(
        self,
        vectors: np.ndarray,
        radius: float,
        *,
        limit: int = 100,
        expr: str | None = None,
    ) -> list[list[Hit]]:
        """Per query vector, up to ``limit`` hits scoring above ``radius`` (inner product), best
        first: Milvus range search (near-duplicates); expr is an already-safe Milvus filter."""

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
    def iterate_where(
        self, expr: str, batch_size: int = 1000, *, with_vectors: bool = False
    ) -> Iterator[list[Record]]:
        """The stored records matching an already-safe Milvus filter, in batches (id order)."""

    @abstractmethod
    def delete_where(self, expr: str) -> int:
        """Remove every row matching an already-safe, non-empty Milvus filter; returns how many
        rows went."""

    @abstractmethod
    def count(self) -> int:
        """Number of stored rows."""

    @abstractmethod
    def drop(self) -> None:
        """Delete the whole collection."""

    @abstractmethod
    def wait_until_indexed(self, timeout: float = 120.0, poll: float = 0.5) -> bool:
        """After flush(): wait until every row is searched through the index (False: timeout)."""

    # ----- names: targets and aliases ------------------------------------------------------

    @abstractmethod
    def describe_target(self) -> Target:
        """Where the configured name points now, and the model recorded there.

        Read afresh on every call, even when the store itself is pinned elsewhere.
        """

    @abstractmethod
    def model_spec(self) -> dict[str, Any] | None:
        """How the collection's model was specified when it was created (None: not recorded)."""

    @abstractmethod
    def resolve(self) -> str:
        """The concrete collection this store's name reads now (an alias's current target)."""

    @abstractmethod
    def refresh(self) -> str:
        """Follow the name again (a moved alias is read from now on); returns the target."""

    @abstractmethod
    def set_alias(self, alias: str) -> None:
        """Point ``alias`` at this store's collection: created, or moved atomically."""

    def create_alias(self, alias: str) -> None:
        """Make a new ``alias`` name this collection (a StoreError if it exists)."""
        if self.describe_alias(alias) is not None:
            raise StoreError(f"alias {alias!r} already exists at {self.where}")
        self.set_alias(alias)

    def alter_alias(self, alias: str) -> None:
        """Move an existing ``alias`` to this collection, atomically for its readers."""
        if self.describe_alias(alias) is None:
            raise StoreError(f"alias {alias!r} does not exist at {self.where}")
        self.set_alias(alias)

    @abstractmethod
    def describe_alias(self, alias: str) -> str | None:
        """The collection ``alias`` names, or None when there is no such alias."""

    @abstractmethod
    def drop_alias(self, alias: str) -> bool:
        """Remove ``alias`` (its collection stays); False when there was none."""

    @abstractmethod
    def list_aliases(self) -> list[str]:
        """The aliases that name this store's collection."""

    @abstractmethod
    def rename(self, new_name: str) -> None:
        """Rename the collection (a ConfigError where the backend cannot)."""

    @abstractmethod
    def close(self) -> None:
        """Release the connection."""

    def __enter__(self) -> VectorStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
