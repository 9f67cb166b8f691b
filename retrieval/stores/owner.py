"""A VectorStore on a Milvus Lite file that ``mmrag serve`` owns: every call goes through it.

Milvus Lite lets one process use a file. While a server owns it and published an owner file
(``owner_file``), ``open_store`` gives other commands an ``OwnerStore``: each method of the
contract is sent to the server (``owner_client``, ``owner_wire``), which runs it on a store of
its own for this client (``owner_calls``), and errors come back as the same exception types.
So ingest, search, stats and the rest print the same output and exit with the same codes as on
a file they open themselves; only the store calls travel (embedding stays in the command).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from retrieval.errors import MmragError, StoreError
from retrieval.stores.base import RRF, Capabilities, Fusion, Target, VectorStore
from retrieval.stores.owner_client import OwnerClient
from retrieval.stores.owner_file import OwnerRecord
from retrieval.stores.owner_wire import (
    decode_capabilities,
    decode_hit,
    decode_info,
    decode_record,
    decode_target,
    encode_array,
    encode_fusion,
    encode_record,
)
from retrieval.types import CollectionInfo, Hit, Record

# Request bodies stay under the server's smallest body cap (the upload cap plus 1 MiB): bytes of
# records per forwarded write call (the server's store splits them into its own write calls),
# ids and query vectors per call.
WRITE_BODY_BYTES = 768 * 1024
IDS_PER_CALL = 4096
QUERY_ROWS_PER_CALL = 128


class OwnerStore(VectorStore):
    """The collection ``collection`` of a served Lite file, used through its owning server."""

    def __init__(self, owner: OwnerRecord, collection: str, *, index_type: str = "auto",
                 client: OwnerClient | None = None) -> None:
        self.owner = owner
        self._client = client or OwnerClient(owner)
        opened = self._client.call("open", {"collection": collection, "index_type": index_type})
        self._session: str | None = str(opened["session"])
        self.collection = str(opened["collection"])
        self.where = str(opened["where"])
        self._capabilities = decode_capabilities(opened["capabilities"])

    def __repr__(self) -> str:
        """Where the store points and through which server (never the token)."""
        return f"OwnerStore({self.where!r}, {self.collection!r}, via {self.owner.url})"

    def _call(self, method: str, **args: Any) -> Any:
        """Run ``method`` on the server's store for this session; returns its value."""
        if self._session is None:
            raise StoreError(f"store for {self.collection!r} is closed")
        answer = self._client.call(
            "call", {"session": self._session, "method": method, "args": args}
        )
        self.collection = str(answer.get("collection", self.collection))
        return answer.get("value")

    @property
    def capabilities(self) -> Capabilities:
        """The owner's store's, with writes from several processes."""
        return self._capabilities

    def ensure_collection(
        self,
        dim: int,
        model_id: str,
        *,
        spec: Mapping[str, Any] | None = None,
        text_columns: Sequence[str] | None = None,
    ) -> None:
        """Create or check the collection on the server (pins the server-side store)."""
        self._call("ensure_collection", dim=dim, model_id=model_id,
                   spec=dict(spec) if spec is not None else None,
                   text_columns=list(text_columns) if text_columns is not None else None)

    def list_collections(self) -> list[str]:
        """Names of every collection in the file."""
        return [str(name) for name in self._call("list_collections")]

    def exists(self) -> bool:
        """Whether the collection exists."""
        return bool(self._call("exists"))

    def info(self) -> CollectionInfo:
        """Count, dimension, model and index of the collection."""
        return decode_info(self._call("info"))

    def upsert(self, records: Sequence[Record]) -> int:
        """Insert or replace records by id, in size-bounded forwarded calls."""
        return self._write("upsert", records)

    def add(self, records: Sequence[Record]) -> int:
        """Write checked-new records the owner's fastest safe way."""
        return self._write("add", records)

    def _write(self, method: str, records: Sequence[Record]) -> int:
        """Send records in calls of at most ``WRITE_BODY_BYTES`` of vectors."""
        written = 0
        for chunk in _chunks([_encoded(r) for r in records]):
            written += int(self._call(method, records=chunk))
        return written

    def flush(self) -> None:
        """Make written rows durable and searchable."""
        self._call("flush")

    def existing_ids(self, ids: Sequence[str]) -> set[str]:
        """The subset of ids already stored."""
        found: set[str] = set()
        for part in _id_parts(ids):
            found.update(str(i) for i in self._call("existing_ids", ids=part))
        return found

    def search(
        self,
        vectors: np.ndarray,
        k: int = 10,
        *,
        offset: int = 0,
        expr: str | None = None,
        with_vectors: bool = False,
    ) -> list[list[Hit]]:
        """Top-k hits per query vector, searched by the server."""
        hits: list[list[Hit]] = []
        for part in _vector_parts(vectors):
            hits += _hits(self._call("search", vectors=encode_array(part), k=k, offset=offset,
                                     expr=expr, with_vectors=with_vectors))
        return hits

    def has_text_index(self) -> bool:
        """Whether the collection has the text index."""
        return bool(self._call("has_text_index"))

    def text_columns(self) -> tuple[str, ...]:
        """The metadata columns the text index holds."""
        return tuple(str(c) for c in self._call("text_columns"))

    def keyword_search(
        self, texts: Sequence[str], k: int = 10, *, offset: int = 0, expr: str | None = None
    ) -> list[list[Hit]]:
        """Top-k hits per text query by BM25, searched by the server."""
        found = self._call("keyword_search", texts=list(texts), k=k, offset=offset, expr=expr)
        return _hits(found)

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
        """Top-k fused hits per (vector, text) pair, searched by the server."""
        found = self._call("hybrid_search", vectors=encode_array(vectors), texts=list(texts),
                           k=k, offset=offset, expr=expr, fusion=encode_fusion(fusion))
        return _hits(found)

    def range_search(
        self,
        vectors: np.ndarray,
        radius: float,
        *,
        limit: int = 100,
        expr: str | None = None,
    ) -> list[list[Hit]]:
        """Per query vector, hits above ``radius``, searched by the server."""
        hits: list[list[Hit]] = []
        for part in _vector_parts(vectors):
            hits += _hits(self._call("range_search", vectors=encode_array(part), radius=radius,
                                     limit=limit, expr=expr))
        return hits

    def get(self, ids: Sequence[str], *, with_vectors: bool = False) -> list[Record]:
        """Stored records for these ids."""
        records: list[Record] = []
        for part in _id_parts(ids):
            rows = self._call("get", ids=part, with_vectors=with_vectors)
            records += [decode_record(row) for row in rows]
        return records

    def iterate(
        self, batch_size: int = 1000, *, with_vectors: bool = True
    ) -> Iterator[list[Record]]:
        """Every stored record, in batches streamed by the server."""
        return self._stream({"batch_size": batch_size, "with_vectors": with_vectors})

    def iterate_where(
        self, expr: str, batch_size: int = 1000, *, with_vectors: bool = False
    ) -> Iterator[list[Record]]:
        """The records matching ``expr``, in batches streamed by the server."""
        return self._stream({"expr": expr, "batch_size": batch_size,
                             "with_vectors": with_vectors})

    def _stream(self, args: dict[str, Any]) -> Iterator[list[Record]]:
        """Batches of records the server streams for this session."""
        for batch in self._client.stream("iterate", {"session": self._session, **args}):
            yield [decode_record(row) for row in batch]

    def delete(self, ids: Iterable[str]) -> None:
        """Remove these ids."""
        for part in _id_parts(ids):
            self._call("delete", ids=part)

    def delete_where(self, expr: str) -> int:
        """Remove every row matching ``expr``; returns how many went."""
        return int(self._call("delete_where", expr=expr))

    def count(self) -> int:
        """Number of stored rows."""
        return int(self._call("count"))

    def drop(self) -> None:
        """Delete the whole collection."""
        self._call("drop")

    def wait_until_indexed(self, timeout: float = 120.0, poll: float = 0.5) -> bool:
        """Wait on the server until every row is searched through the index."""
        return bool(self._call("wait_until_indexed", timeout=timeout, poll=poll))

    def describe_target(self) -> Target:
        """Where the configured name points now, and its model."""
        return decode_target(self._call("describe_target"))

    def model_spec(self) -> dict[str, Any] | None:
        """The collection's recorded model spec."""
        spec = self._call("model_spec")
        return dict(spec) if spec is not None else None

    def resolve(self) -> str:
        """The concrete collection the name reads now."""
        return str(self._call("resolve"))

    def refresh(self) -> str:
        """Follow the name again; returns the target."""
        return str(self._call("refresh"))

    def set_alias(self, alias: str) -> None:
        """Point ``alias`` at this collection."""
        self._call("set_alias", alias=alias)

    def create_alias(self, alias: str) -> None:
        """Make a new ``alias`` name this collection."""
        self._call("create_alias", alias=alias)

    def alter_alias(self, alias: str) -> None:
        """Move an existing ``alias`` to this collection."""
        self._call("alter_alias", alias=alias)

    def describe_alias(self, alias: str) -> str | None:
        """The collection ``alias`` names, or None."""
        found = self._call("describe_alias", alias=alias)
        return None if found is None else str(found)

    def drop_alias(self, alias: str) -> bool:
        """Remove ``alias``; False when there was none."""
        return bool(self._call("drop_alias", alias=alias))

    def list_aliases(self) -> list[str]:
        """The aliases that name this collection."""
        return [str(a) for a in self._call("list_aliases")]

    def rename(self, new_name: str) -> None:
        """Rename the collection (the server's store says where it cannot)."""
        self._call("rename", new_name=new_name)

    def close(self) -> None:
        """End the session on the server and close the connection."""
        session, self._session = self._session, None
        if session is None:
            return
        try:
            self._client.call("close", {"session": session})
        except MmragError:
            pass  # a server that is gone has closed it already
        finally:
            self._client.close()

    def __enter__(self) -> OwnerStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _encoded(record: Record) -> dict[str, Any]:
    """A record for the wire, or the store's own error for metadata that is not plain JSON."""
    try:
        json.dumps(dict(record.metadata), allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise StoreError(f"record {record.id!r}: metadata is not plain JSON: {exc}") from exc
    return encode_record(record)


def _chunks(rows: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """Rows in groups of at most ``WRITE_BODY_BYTES`` of JSON (at least one row each)."""
    chunk: list[dict[str, Any]] = []
    size = 0
    for row in rows:
        row_bytes = len(json.dumps(row))
        if chunk and size + row_bytes > WRITE_BODY_BYTES:
            yield chunk
            chunk, size = [], 0
        chunk.append(row)
        size += row_bytes
    if chunk:
        yield chunk


def _hits(found: list[list[Any]]) -> list[list[Hit]]:
    """Hits per query from the wire."""
    return [[decode_hit(hit) for hit in hits] for hits in found]


def _id_parts(ids: Iterable[str]) -> Iterator[list[str]]:
    """Ids without repeats, in order, in parts of at most ``IDS_PER_CALL``."""
    unique = list(dict.fromkeys(str(i) for i in ids))
    for start in range(0, len(unique), IDS_PER_CALL):
        yield unique[start : start + IDS_PER_CALL]


def _vector_parts(vectors: np.ndarray) -> Iterator[np.ndarray]:
    """Query vectors in parts of at most ``QUERY_ROWS_PER_CALL`` rows (one part when they are
    not a matrix: the server's store says what is wrong with them)."""
    queries = np.asarray(vectors, dtype=np.float32)
    if queries.ndim != 2 or queries.shape[0] <= QUERY_ROWS_PER_CALL:
        yield queries
        return
    for start in range(0, queries.shape[0], QUERY_ROWS_PER_CALL):
        yield queries[start : start + QUERY_ROWS_PER_CALL]
