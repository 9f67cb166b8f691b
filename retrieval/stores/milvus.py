"""The VectorStore on Milvus (Lite file or server) through pymilvus ``MilvusClient``.

What differs between Milvus Lite and a server is the store's ``backend`` (``milvus_backend``),
chosen from the URI when the store connects; names and aliases go through ``backend.names``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from pymilvus import MilvusClient
from pymilvus.client.types import LoadState
from pymilvus.exceptions import MilvusException

from retrieval.errors import (
    ConfigError,
    ModelMismatchError,
    StoreError,
    StoreUnavailableError,
    TextIndexMissingError,
)
from retrieval.stores import milvus_hybrid
from retrieval.stores.base import (
    RRF,
    Capabilities,
    Fusion,
    Target,
    VectorStore,
    missing_text_index_message,
)
from retrieval.stores.expr import ids_in_expr, quote_string
from retrieval.stores.milvus_backend import MilvusBackend, backend_for
from retrieval.stores.milvus_checks import (
    CONSISTENCY_LEVELS,
    check_options,
    check_page,
    query_matrix,
)
from retrieval.stores.milvus_errors import translate
from retrieval.stores.milvus_rows import (
    COLLECTION_NAME,
    FIELDS,
    HNSW_EF,
    IDS_PER_CALL,
    IVF_NPROBE,
    MAX_MODEL_ID_BYTES,
    MAX_TOPK,
    METRIC,
    QUERIES_PER_CALL,
    batches,
    chunks_by_size,
    search_params,
    to_hit,
    to_record,
    to_row,
    unique_ids,
)
from retrieval.stores.milvus_schema import (
    TEXT_FIELD,
    CollectionMeta,
    build_index,
    build_schema,
    check_text_columns,
    indexed_rows,
    is_growing,
    read_meta,
    searchable_text,
)
from retrieval.types import CollectionInfo, Hit, Record

__all__ = ["CONSISTENCY_LEVELS", "MilvusStore", "Target"]
# range search's upper bound: unit vectors score at most 1 (plus float rounding)
RANGE_CEILING = 1.0 + 1e-3


class MilvusStore(VectorStore):
    """One Milvus collection: ``id`` VARCHAR key, unit ``vector`` (IP), fields, JSON metadata."""

    def __init__(
        self,
        uri: str,
        collection: str,
        *,
        token: str | None = None,
        index_type: str = "auto",
        timeout: float = 30.0,
        slow_timeout: float = 300.0,
        connect_timeout: float = 10.0,
        consistency: str = "Strong",
        hnsw_ef: int = HNSW_EF,
        ivf_nprobe: int = IVF_NPROBE,
        create: bool = True,
    ) -> None:
        """Connect to Milvus Lite (a ``.db`` path) or a server (``http(s)://host:port``).

        ``collection`` may be an alias (a server's, or a Lite pointer file's, see
        ``lite_aliases``): reads follow the alias; ``ensure_collection`` pins the store to the
        collection the alias names then, so a writer never follows a later alias switch.
        ``create=False`` opens only what exists: a missing Lite file (or its folder) is a
        CollectionNotFoundError, and nothing is created on disk.
        """
        check_options(
            uri, collection, consistency=consistency, hnsw_ef=hnsw_ef, ivf_nprobe=ivf_nprobe,
            timeouts=(timeout, slow_timeout, connect_timeout),
        )
        self.hnsw_ef = hnsw_ef
        self.ivf_nprobe = ivf_nprobe
        self.collection = collection
        self.uri = uri.strip()
        self.backend: MilvusBackend = backend_for(self.uri)
        self.where = self.backend.where
        self.index_type = self.backend.index_type(index_type)
        self._timeout = timeout
        self._slow_timeout = slow_timeout
        self._consistency = consistency
        self._meta_cache: CollectionMeta | None = None
        self._with_text_rows: set[str] = set()  # collections seen holding rows (BM25 has stats)
        self._pinned = False
        self._full_text: tuple[bool, str] | None = None  # read from the server once
        if not create:
            self.backend.require_data(collection)
        self._client: MilvusClient | None = self.backend.connect(token, connect_timeout)
        self._names = self.backend.names(self._call, timeout, slow_timeout)
        self._target = self._names.reads(collection)  # the name calls address

    @property
    def capabilities(self) -> Capabilities:
        """Milvus Lite: an embedded file with pointer-file aliases; a server: real aliases.

        Full-text search (BM25) from Milvus 2.5 on: Lite 2.5.1 has it, the server says its
        version.
        """
        supported, missing = self._full_text_support()
        return replace(self.backend.capabilities, full_text=supported, full_text_missing=missing)

    def _full_text_support(self) -> tuple[bool, str]:
        """Whether this Milvus has BM25, and why not (its version), asked once."""
        if self._full_text is None:
            if self.backend.embedded:
                from milvus_lite import __version__ as version
            else:
                version = self._server_version()
            self._full_text = milvus_hybrid.full_text_support(
                version, self.backend.label, self.where
            )
        return self._full_text

    def _server_version(self) -> str:
        """The server's version ('' when it does not say: a gRPC endpoint without GetVersion,
        such as a proxied Milvus Lite, answers UNIMPLEMENTED; a server that is down is still
        reported as down)."""
        try:
            with self._call("get_server_version") as client:
                return str(client.get_server_version(timeout=self._timeout))
        except StoreUnavailableError:
            raise
        except StoreError:
            return ""

    @property
    def is_local(self) -> bool:
        """Whether this is a Milvus Lite file rather than a server."""
        return self.backend.embedded

    @property
    def _lite_db(self) -> Path | None:
        """The Milvus Lite file (None for a server)."""
        return getattr(self.backend, "db", None)

    def __repr__(self) -> str:
        """Show where the store points, never the token."""
        return f"MilvusStore({self.where!r}, {self.collection!r})"

    def __enter__(self) -> MilvusStore:
        """Use the store as a context manager."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close on leaving the block."""
        self.close()

    @contextmanager
    def _call(self, action: str) -> Iterator[MilvusClient]:
        """Yield the client; translate pymilvus and gRPC failures into StoreErrors."""
        if self._client is None:
            raise StoreError(f"store for {self.collection!r} is closed")
        try:
            yield self._client
        except (MilvusException, grpc.RpcError) as exc:
            raise translate(exc, action, self.where, self.collection) from exc

    # ----- collection lifecycle -------------------------------------------------------

    def list_collections(self) -> list[str]:
        """Names of every collection behind this store's URI."""
        with self._call("list_collections") as client:
            return sorted(str(n) for n in client.list_collections(timeout=self._timeout))

    def exists(self) -> bool:
        """Whether the collection exists."""
        with self._call("has_collection") as client:
            return bool(client.has_collection(self._target, timeout=self._timeout))

    def ensure_collection(
        self,
        dim: int,
        model_id: str,
        *,
        spec: Mapping[str, Any] | None = None,
        text_columns: Sequence[str] | None = None,
    ) -> None:
        """Create the collection for this model, or check that an existing one matches it.

        ``spec`` (e.g. ``{"model": ..., "pretrained": ..., "checkpoint": ...}``) is recorded
        with a new collection, so that the model can be loaded again from the collection alone
        (``model_spec``). The store is then pinned to the collection an alias names now.
        A new collection gets the BM25 text index where Milvus has it (2.5+), holding the
        caption, the file name and the metadata ``text_columns``; naming columns that an
        existing collection does not index is a ConfigError.
        """
        columns = check_text_columns(text_columns or ())
        if columns and not self._full_text_support()[0]:
            raise TextIndexMissingError(self._full_text_support()[1])
        if not isinstance(dim, int) or dim <= 0:
            raise ConfigError(f"dimension must be a positive integer, got {dim!r}")
        if not model_id or len(model_id.encode("utf-8")) > MAX_MODEL_ID_BYTES:
            raise ConfigError(f"model id must be 1 to {MAX_MODEL_ID_BYTES} bytes")
        recorded: dict[str, Any] | None = None
        if spec is not None:
            try:
                recorded = json.loads(json.dumps(dict(spec), allow_nan=False))
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"model spec is not plain JSON: {exc}") from exc
        if not self.exists():
            try:
                self._create(dim, model_id, recorded, columns)
            except StoreError:
                if not self.exists():  # lost a creation race: check the winner below
                    raise
        meta = self._meta(refresh=True)
        if meta.model_id != model_id or meta.dim != dim:
            raise ModelMismatchError(
                f"collection {self.collection!r} holds vectors of model {meta.model_id!r} "
                f"(dim {meta.dim}); refusing model {model_id!r} (dim {dim}). "
                "Use another collection or re-index."
            )
        if text_columns is not None and columns and meta.text_columns != columns:
            raise ConfigError(
                f"collection {self.collection!r} indexes the text columns "
                f"{list(meta.text_columns or ())} (asked: {list(columns)}); index other columns "
                f"with `mmrag reindex --add-text-index --text-columns {','.join(columns)}` "
                "(no re-embedding), or ingest into a new collection"
            )
        self._target, self._pinned = meta.collection, True
        self._load()

    def _create(
        self, dim: int, model_id: str, spec: dict[str, Any] | None, columns: tuple[str, ...]
    ) -> None:
        """Create schema, index (the text index where Milvus has BM25) and load the collection."""
        text = columns if self._full_text_support()[0] else None
        with self._call("create_collection") as client:
            client.create_collection(
                self._target,
                schema=build_schema(dim, model_id, spec, text),
                index_params=build_index(self.index_type, METRIC, text_index=text is not None),
                consistency_level=self._consistency,
                timeout=self._slow_timeout,
            )
        self._meta_cache = None

    def _load(self) -> None:
        """Load the collection into memory if it is not (e.g. after a server restart)."""
        with self._call("load_collection") as client:
            state = client.get_load_state(self._target, timeout=self._timeout)
            if state.get("state") != LoadState.Loaded:
                client.load_collection(self._target, timeout=self._slow_timeout)

    def _meta(self, *, refresh: bool = False, max_age: float | None = None) -> CollectionMeta:
        """Dimension, model and index type of the collection (cached; max_age in seconds)."""
        cached = self._meta_cache
        stale = cached is None or refresh
        if cached is not None and max_age is not None:
            stale = stale or time.monotonic() - cached.at > max_age
        if cached is not None and not stale:
            return cached
        meta = self._describe(self._target)
        # Right after creation the server may not list the index yet: read it again next time.
        self._meta_cache = meta if meta.index_type != "NONE" else None
        return meta

    def _describe(self, name: str) -> CollectionMeta:
        """Read what mmrag recorded about a collection (or the one an alias names)."""
        with self._call("describe_collection") as client:
            desc = client.describe_collection(name, timeout=self._timeout)
            indexes = client.list_indexes(name, field_name="vector")
            index_type = "NONE"
            if indexes:
                about = client.describe_index(name, indexes[0], timeout=self._timeout)
                index_type = str(about.get("index_type", "NONE"))
        return read_meta(desc, index_type, name, self.where)

    def info(self) -> CollectionInfo:
        """Count, dimension, model and index of the collection."""
        meta = self._meta(refresh=True)
        return CollectionInfo(
            name=self.collection,
            count=self.count(),
            dim=meta.dim,
            model_id=meta.model_id,
            index_type=meta.index_type,
            metric=METRIC,
        )

    def index_progress(self) -> tuple[int, int]:
        """Rows indexed and total rows the server reports for the vector index."""
        with self._call("describe_index") as client:
            about = client.describe_index(self._target, "vector", timeout=self._timeout)
        return int(about.get("indexed_rows", 0)), int(about.get("total_rows", 0))

    def wait_until_indexed(self, timeout: float = 120.0, poll: float = 0.5) -> bool:
        """After flush(): wait until the server serves every row from sealed, indexed segments.

        Returns False on timeout. Milvus Lite searches its data directly: always True there.
        """
        if not self.backend.waits_for_index:
            return True
        deadline = time.monotonic() + timeout
        while True:
            total = self.count()
            with self._call("list_loaded_segments") as client:
                about = client.describe_index(self._target, "vector", timeout=self._timeout)
                segments = client.list_loaded_segments(self._target, timeout=self._timeout)
            growing = any(is_growing(segment) for segment in segments)
            served = sum(indexed_rows(segment) for segment in segments)
            if int(about.get("pending_index_rows", 0)) == 0 and served >= total and not growing:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(poll)

    def drop(self) -> None:
        """Delete the whole collection (nothing happens if it does not exist)."""
        with self._call("drop_collection") as client:
            if client.has_collection(self._target, timeout=self._timeout):
                client.drop_collection(self._target, timeout=self._slow_timeout)
        self._meta_cache = None
        self._with_text_rows.discard(self._target)

    def close(self) -> None:
        """Release the connection (and the Milvus Lite process when no store uses it)."""
        client, self._client = self._client, None
        if client is not None:
            self.backend.disconnect(client)

    # ----- names: targets and aliases (a server's own; a Lite pointer file) -------------

    def describe_target(self) -> Target:
        """Where the configured name points now (even if this store is pinned elsewhere).

        The concrete collection (a moved alias or Lite pointer followed), its model id, dim and
        model spec. The store itself keeps reading its current target until ``refresh()``.
        """
        return self._describe(self._names.reads(self.collection)).target()

    def model_spec(self) -> dict[str, Any] | None:
        """How the collection's model was specified when it was created (None: not recorded)."""
        spec = self._meta(refresh=True).spec
        return dict(spec) if spec is not None else None

    def resolve(self) -> str:
        """The concrete collection this store's name reads now (an alias's current target)."""
        return self._names.resolve(self.collection)

    def refresh(self) -> str:
        """Follow the name again (unpin; a moved alias is read from now on); returns the target."""
        self._pinned = False
        self._meta_cache = None
        self._target = self._names.reads(self.collection)
        return self._target

    def set_alias(self, alias: str) -> None:
        """Point ``alias`` at this store's collection: created, or moved atomically."""
        if not COLLECTION_NAME.match(alias):
            raise ConfigError(f"alias {alias!r} is not a valid collection name")
        target = self.resolve()
        if alias == target:
            raise ConfigError(f"alias {alias!r} cannot name itself")
        self._names.point(alias, target)

    def describe_alias(self, alias: str) -> str | None:
        """The collection ``alias`` names, or None when there is no such alias."""
        return self._names.describe(alias)

    def drop_alias(self, alias: str) -> bool:
        """Remove ``alias`` (its collection stays); False when there was none."""
        return self._names.drop(alias)

    def list_aliases(self) -> list[str]:
        """The aliases that name this store's collection."""
        return self._names.aliases_of(self.resolve())

    def rename(self, new_name: str) -> None:
        """Rename the collection (server only; Lite aliases make renames unnecessary)."""
        if not COLLECTION_NAME.match(new_name):
            raise ConfigError(f"collection name {new_name!r} is not valid")
        self._names.rename(self.resolve(), new_name)
        self.collection = new_name
        self.refresh()

    # ----- writes ---------------------------------------------------------------------

    def upsert(self, records: Sequence[Record]) -> int:
        """Insert or replace records by id in size-bounded calls; returns rows written."""
        return self._write(records, "upsert")

    def add(self, records: Sequence[Record]) -> int:
        """Write rows whose ids were just checked absent, the backend's fastest safe way.

        Lite 2.5.1 runs every upsert call as a full-table-scan delete first (0.14 s per 256
        rows at 100k stored rows, ~1 s at 1M; a plain insert takes 0.03 s), and one Lite file
        has one writing process, so nothing can store the checked ids meanwhile: it inserts.
        Servers may have concurrent writers (shards, Ray), so they keep upsert's replace-by-id.
        """
        return self._write(records, self.backend.add_method)

    def _write(self, records: Sequence[Record], method: str) -> int:
        """Send records with ``client.insert`` or ``client.upsert`` in size-bounded calls."""
        if not records:
            return 0
        meta = self._meta()
        latest: dict[str, Record] = {}
        for record in records:  # one id twice in a batch would be stored twice: keep the last
            latest[record.id] = record
        rows = [
            to_row(r, dim=meta.dim, model_id=meta.model_id, collection=self.collection)
            for r in latest.values()
        ]
        if meta.text_columns is not None:
            for row in rows:
                row[TEXT_FIELD] = searchable_text(
                    row["caption"], row["source"], row["metadata"], meta.text_columns
                )
        written = 0
        for chunk in chunks_by_size(rows, meta.dim, self.backend.batch_bytes()):
            with self._call(method) as client:
                getattr(client, method)(self._target, chunk, timeout=self._timeout)
            written += len(chunk)
        return written

    def flush(self) -> None:
        """Seal written rows so they are durable and searched through the index."""
        with self._call("flush") as client:
            client.flush(self._target, timeout=self._slow_timeout)

    def delete(self, ids: Iterable[str]) -> None:
        """Remove these ids (missing ids are ignored)."""
        for batch in batches(unique_ids(ids), IDS_PER_CALL):
            with self._call("delete") as client:
                client.delete(self._target, filter=ids_in_expr(batch), timeout=self._timeout)

    def delete_where(self, expr: str) -> int:
        """Remove every row matching ``expr`` (non-empty); returns how many rows went.

        The matching ids are read first and deleted by id, so the count is exact on Lite and
        on servers alike (a server's filtered delete reports no reliable count).
        """
        if not expr.strip():
            raise ConfigError("a filtered delete needs a filter; give the ids or a filter")
        ids = [r.id for batch in self.iterate_where(expr, MAX_TOPK) for r in batch]
        self.delete(ids)
        return len(ids)

    # ----- reads ----------------------------------------------------------------------

    def count(self) -> int:
        """Exact number of live rows (``count(*)``, not the segment row statistics)."""
        with self._call("count") as client:
            rows = client.query(
                self._target,
                filter="",
                output_fields=["count(*)"],
                timeout=self._timeout,
                consistency_level=self._consistency,
            )
        return int(rows[0]["count(*)"]) if rows else 0

    def existing_ids(self, ids: Sequence[str]) -> set[str]:
        """The subset of ids already stored (checked in batches)."""
        found: set[str] = set()
        for batch in batches(unique_ids(ids), IDS_PER_CALL):
            found.update(str(row["id"]) for row in self._query(ids_in_expr(batch), ["id"]))
        return found

    def get(self, ids: Sequence[str], *, with_vectors: bool = False) -> list[Record]:
        """Stored records for these ids, in the order asked (missing ids are skipped)."""
        wanted = unique_ids(ids)
        fields = [*FIELDS, "vector"] if with_vectors else list(FIELDS)
        by_id: dict[str, Record] = {}
        for batch in batches(wanted, IDS_PER_CALL):
            for row in self._query(ids_in_expr(batch), fields):
                record = to_record(row)
                by_id[record.id] = record
        return [by_id[i] for i in wanted if i in by_id]

    def iterate(
        self, batch_size: int = 1000, *, with_vectors: bool = True
    ) -> Iterator[list[Record]]:
        """Every stored record in id order, in batches (keyset paging on the primary key)."""
        return self._pages("", batch_size, with_vectors)

    def iterate_where(
        self, expr: str, batch_size: int = 1000, *, with_vectors: bool = False
    ) -> Iterator[list[Record]]:
        """The records matching ``expr`` (already safe), in id order, in batches."""
        return self._pages(expr, batch_size, with_vectors)

    def _pages(self, where: str, batch_size: int, with_vectors: bool) -> Iterator[list[Record]]:
        """Keyset paging on the primary key over the rows matching ``where`` ('' for all)."""
        if not 1 <= batch_size <= MAX_TOPK:
            raise ConfigError(f"batch_size must be within 1..{MAX_TOPK}, got {batch_size}")
        return self._page_rows(where, batch_size, with_vectors)

    def _page_rows(
        self, where: str, batch_size: int, with_vectors: bool
    ) -> Iterator[list[Record]]:
        fields = [*FIELDS, "vector"] if with_vectors else list(FIELDS)
        last: str | None = None
        while True:
            clauses = [f"({where})"] if where.strip() else []
            if last is not None:
                clauses.append(f"id > {quote_string(last)}")
            expr = " and ".join(clauses)
            rows = self._query(expr, fields, limit=batch_size)
            if not rows:
                return
            batch = sorted((to_record(row) for row in rows), key=lambda r: r.id)
            last = batch[-1].id
            yield batch

    def _query(
        self, expr: str, fields: list[str], *, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Run a scalar query with the store's timeout and consistency."""
        extra: dict[str, Any] = {}
        if limit is not None:
            extra = {"limit": limit, "iterator": "True"}  # "iterator": results ordered by id
        with self._call("query") as client:
            rows = client.query(
                self._target,
                filter=expr,
                output_fields=fields,
                timeout=self._timeout,
                consistency_level=self._consistency,
                **extra,
            )
        return list(rows)

    def range_search(
        self,
        vectors: np.ndarray,
        radius: float,
        *,
        limit: int = 100,
        expr: str | None = None,
    ) -> list[list[Hit]]:
        """Per query vector, up to ``limit`` hits scoring above ``radius``, best first (Milvus
        range search: ``radius`` < IP <= ``range_filter``, just above 1 for unit vectors)."""
        if not 1 <= limit <= MAX_TOPK:
            raise ConfigError(f"limit must be within 1..{MAX_TOPK}, got {limit}")
        if not -1.0 <= radius < 1.0:
            raise ConfigError(f"radius must be within -1..1 (exclusive of 1), got {radius}")
        meta = self._meta(max_age=None if self._pinned else self.backend.meta_max_age_s)
        queries = query_matrix(vectors, meta.dim, meta.model_id, self.collection)
        search = search_params(meta.index_type, limit, self.hnsw_ef, self.ivf_nprobe)
        params = {
            "metric_type": METRIC,
            "params": {**search, "radius": float(radius), "range_filter": RANGE_CEILING},
        }
        hits: list[list[Hit]] = []
        for start in range(0, queries.shape[0], QUERIES_PER_CALL):
            chunk = queries[start : start + QUERIES_PER_CALL]
            with self._call("search") as client:
                result = client.search(
                    self._target,
                    data=chunk.tolist(),
                    limit=limit,
                    filter=expr or "",
                    output_fields=list(FIELDS),
                    search_params=params,
                    anns_field="vector",
                    timeout=self._timeout,
                    consistency_level=self._consistency,
                )
            hits.extend([to_hit(found) for found in per_query] for per_query in result)
        return hits

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
        check_page(k, offset)
        meta = self._meta(max_age=None if self._pinned else self.backend.meta_max_age_s)
        queries = query_matrix(vectors, meta.dim, meta.model_id, self.collection)
        fields = [*FIELDS, "vector"] if with_vectors else list(FIELDS)
        search = search_params(meta.index_type, k + offset, self.hnsw_ef, self.ivf_nprobe)
        params = {"metric_type": METRIC, "params": search}
        hits: list[list[Hit]] = []
        for start in range(0, queries.shape[0], QUERIES_PER_CALL):
            chunk = queries[start : start + QUERIES_PER_CALL]
            with self._call("search") as client:
                result = client.search(
                    self._target,
                    data=chunk.tolist(),
                    limit=k,
                    offset=offset,
                    filter=expr or "",
                    output_fields=fields,
                    search_params=params,
                    anns_field="vector",
                    timeout=self._timeout,
                    consistency_level=self._consistency,
                )
            hits.extend([to_hit(found) for found in per_query] for per_query in result)
        return hits

    # ----- full-text: keyword (BM25) and hybrid searches (milvus_hybrid) -----------------

    def has_text_index(self) -> bool:
        """Whether the collection has the BM25 text index (recorded in its description)."""
        return self._search_meta().text_columns is not None

    def text_columns(self) -> tuple[str, ...]:
        """The metadata columns the text index holds besides the caption and file name."""
        return self._search_meta().text_columns or ()

    def _search_meta(self) -> CollectionMeta:
        """The collection's meta as searches read it (re-read after an unpinned max age)."""
        return self._meta(max_age=None if self._pinned else self.backend.meta_max_age_s)

    def _text_meta(self) -> CollectionMeta:
        """The meta of a collection that can be searched by text, or TextIndexMissingError."""
        supported, missing = self._full_text_support()
        if not supported:
            raise TextIndexMissingError(missing)
        meta = self._search_meta()
        if meta.text_columns is None:
            raise TextIndexMissingError(missing_text_index_message(self.collection, self.where))
        return meta

    def keyword_search(
        self, texts: Sequence[str], k: int = 10, *, offset: int = 0, expr: str | None = None
    ) -> list[list[Hit]]:
        """Top-k hits per text query by BM25 over the text index (score: BM25)."""
        check_page(k, offset)
        self._text_meta()
        if self._no_text_rows():
            return [[] for _ in texts]
        options = {"timeout": self._timeout, "consistency_level": self._consistency}
        hits: list[list[Hit]] = []
        for start in range(0, len(texts), QUERIES_PER_CALL):
            with self._call("search") as client:
                hits.extend(milvus_hybrid.keyword_search(
                    client, self._target, texts[start : start + QUERIES_PER_CALL], k,
                    offset=offset, expr=expr, fields=list(FIELDS), options=options,
                ))
        return hits

    def _no_text_rows(self) -> bool:
        """Whether the collection holds no row at all: Milvus Lite's BM25 over an empty corpus
        fails ("Invalid sparse row: NaN or Inf"), so keyword and hybrid searches answer no hits
        without asking it."""
        if self._target in self._with_text_rows:
            return False  # once written, BM25 keeps its statistics even if every row goes
        if self.count() == 0:
            return True
        self._with_text_rows.add(self._target)
        return False

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
        """Per (vector, text) pair: the vector and BM25 rankings fused by Milvus (RRF default)."""
        check_page(k, offset)
        meta = self._text_meta()
        queries = query_matrix(vectors, meta.dim, meta.model_id, self.collection)
        if queries.shape[0] != len(texts):
            raise ConfigError(
                f"hybrid search needs one text per vector; got {queries.shape[0]} vectors "
                f"and {len(texts)} texts"
            )
        if self._no_text_rows():
            return [[] for _ in texts]
        options = {"timeout": self._timeout, "consistency_level": self._consistency}
        hits: list[list[Hit]] = []
        for vector, text in zip(queries, texts, strict=True):
            with self._call("hybrid_search") as client:
                hits.append(milvus_hybrid.hybrid_search(
                    client, self._target, (vector, text), k, offset=offset, expr=expr,
                    fusion=fusion, index=(meta.index_type, METRIC), hnsw_ef=self.hnsw_ef,
                    fields=list(FIELDS), options=options,
                ))
        return hits
