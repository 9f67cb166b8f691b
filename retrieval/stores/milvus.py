"""The VectorStore on Milvus (Lite file or server) through pymilvus ``MilvusClient``."""

from __future__ import annotations

import json
import logging
import threading
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from pymilvus import DataType, MilvusClient
from pymilvus.client.types import LoadState, SegmentState
from pymilvus.exceptions import ConnectionConfigException, ErrorCode, MilvusException

from retrieval.errors import (
    CollectionNotFoundError,
    ConfigError,
    ModelMismatchError,
    StoreError,
    StoreUnavailableError,
)
from retrieval.ids import MAX_ID_LENGTH
from retrieval.stores import is_local_uri, lite_aliases
from retrieval.stores.base import Capabilities, Target, VectorStore
from retrieval.stores.expr import ids_in_expr, quote_string
from retrieval.stores.milvus_rows import (
    COLLECTION_NAME,
    FIELDS,
    HNSW_EF,
    HNSW_MAX_EF,
    IDS_PER_CALL,
    IVF_MAX_NPROBE,
    IVF_NPROBE,
    MAX_CAPTION_BYTES,
    MAX_MODALITY_BYTES,
    MAX_MODEL_ID_BYTES,
    MAX_SOURCE_BYTES,
    MAX_TOPK,
    METRIC,
    QUERIES_PER_CALL,
    batches,
    chunks_by_size,
    index_params,
    lite_path,
    redact_uri,
    resolve_index_type,
    search_params,
    to_hit,
    to_record,
    to_row,
    unique_ids,
    upsert_batch_bytes,
)
from retrieval.types import CollectionInfo, Hit, Record

# Every pymilvus failure is re-raised as a StoreError, so its own ERROR tracebacks are noise.
logging.getLogger("pymilvus").setLevel(logging.CRITICAL)

CONSISTENCY_LEVELS = ("Strong", "Session", "Bounded", "Eventually")
CONNECT_FAILED = 2  # pymilvus Status.CONNECT_FAILED: the channel never became ready
_SEALED = (SegmentState.Sealed, SegmentState.Flushed)
META_TTL_S = 2.0  # an unpinned server store re-reads its collection (an alias may have moved)

_lite_lock = threading.Lock()
_lite_users: dict[str, int] = {}


@dataclass(frozen=True)
class _Meta:
    """What mmrag recorded about a collection when it created it, and when it was read."""

    dim: int
    model_id: str
    index_type: str
    collection: str  # the concrete collection (an alias resolved)
    spec: dict[str, Any] | None  # how to load the model again (see ensure_collection)
    at: float


def _is_not_found(message: str) -> bool:
    """Whether a Milvus message says the collection does not exist."""
    text = message.lower()
    return "collection not found" in text or "can't find collection" in text


def _translate(exc: MilvusException | grpc.RpcError, action: str, where: str) -> StoreError:
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
    if code == ErrorCode.COLLECTION_NOT_FOUND or _is_not_found(message):
        return CollectionNotFoundError(f"{action}: {message} (at {where})")
    unavailable_codes = (
        CONNECT_FAILED,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
    )
    if code in unavailable_codes or "server unavailable" in message.lower():
        return StoreUnavailableError(f"Milvus at {where} is unavailable ({action}): {message}")
    return StoreError(f"Milvus {action} failed at {where}: {message}")


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
    ) -> None:
        """Connect to Milvus Lite (a ``.db`` path) or a server (``http(s)://host:port``).

        ``collection`` may be an alias (a server's, or a Lite pointer file's, see
        ``lite_aliases``): reads follow the alias; ``ensure_collection`` pins the store to the
        collection the alias names then, so a writer never follows a later alias switch.
        """
        if not uri or not uri.strip():
            raise ConfigError("Milvus URI is empty")
        if not COLLECTION_NAME.match(collection):
            raise ConfigError(
                f"collection name {collection!r} must start with a letter or '_' and "
                "contain only letters, digits and '_' (at most 255)"
            )
        if consistency not in CONSISTENCY_LEVELS:
            raise ConfigError(f"consistency must be one of {', '.join(CONSISTENCY_LEVELS)}")
        if min(timeout, slow_timeout, connect_timeout) <= 0:
            raise ConfigError("timeouts must be positive")
        if not 1 <= hnsw_ef <= HNSW_MAX_EF:
            raise ConfigError(f"hnsw_ef must be within 1..{HNSW_MAX_EF}, got {hnsw_ef}")
        if not 1 <= ivf_nprobe <= IVF_MAX_NPROBE:
            raise ConfigError(f"ivf_nprobe must be within 1..{IVF_MAX_NPROBE}, got {ivf_nprobe}")
        self.hnsw_ef = hnsw_ef
        self.ivf_nprobe = ivf_nprobe
        self.collection = collection
        self._target = collection  # the name used in calls: the collection or the alias
        self._pinned = False
        self._lite_db: Path | None = None
        self.uri = uri.strip()
        self.is_local = is_local_uri(self.uri)
        self.index_type = resolve_index_type(index_type, local=self.is_local)
        self._timeout = timeout
        self._slow_timeout = slow_timeout
        self._consistency = consistency
        self._meta_cache: _Meta | None = None
        self._lite_key: str | None = None
        self._where = redact_uri(self.uri)
        self._client: MilvusClient | None = self._connect(token, connect_timeout)
        if self._lite_db is not None:
            self._target = lite_aliases.resolve(self._lite_db, collection)

    @property
    def capabilities(self) -> Capabilities:
        """Milvus Lite: an embedded file with pointer-file aliases; a server: real aliases."""
        return Capabilities(embedded=self.is_local, alias_shadows_collection=self.is_local)

    def __repr__(self) -> str:
        """Show where the store points, never the token."""
        return f"MilvusStore({self._where!r}, {self.collection!r})"

    def __enter__(self) -> MilvusStore:
        """Use the store as a context manager."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close on leaving the block."""
        self.close()

    def _connect(self, token: str | None, connect_timeout: float) -> MilvusClient:
        """Open a dedicated client (starting the Lite server process for a file)."""
        target = self.uri
        if self.is_local:
            path = lite_path(self.uri)
            path.parent.mkdir(parents=True, exist_ok=True)
            self._lite_db = path
            target = str(path)
            self._where = target
            _import_milvus_lite()
            with _lite_lock:  # counted before connecting, so a closing store cannot stop it
                _lite_users[target] = _lite_users.get(target, 0) + 1
            self._lite_key = target
        try:
            return MilvusClient(
                uri=target, token=token or "", timeout=connect_timeout, dedicated=True
            )
        except (MilvusException, grpc.RpcError) as exc:
            err = _translate(exc, "connect", self._where)
            if self.is_local:
                # ConnectionConfigException: Lite never started (e.g. another process owns it).
                _release_lite(target, stop=not isinstance(exc, ConnectionConfigException))
                self._lite_key = None
                err = StoreUnavailableError(
                    f"cannot open Milvus Lite file {target} (Milvus Lite lets one process "
                    f"own a file; is another process using it?): {err}"
                )
            raise err from exc

    @contextmanager
    def _call(self, action: str) -> Iterator[MilvusClient]:
        """Yield the client; translate pymilvus and gRPC failures into StoreErrors."""
        if self._client is None:
            raise StoreError(f"store for {self.collection!r} is closed")
        try:
            yield self._client
        except (MilvusException, grpc.RpcError) as exc:
            raise _translate(exc, f"{action} {self.collection!r}", self._where) from exc

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
        self, dim: int, model_id: str, *, spec: Mapping[str, Any] | None = None
    ) -> None:
        """Create the collection for this model, or check that an existing one matches it.

        ``spec`` (e.g. ``{"model": ..., "pretrained": ..., "checkpoint": ...}``) is recorded
        with a new collection, so that the model can be loaded again from the collection alone
        (``model_spec``). The store is then pinned to the collection an alias names now.
        """
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
                self._create(dim, model_id, recorded)
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
        self._target, self._pinned = meta.collection, True
        self._load()

    def _create(self, dim: int, model_id: str, spec: dict[str, Any] | None) -> None:
        """Create schema, index and load the new collection."""
        recorded: dict[str, Any] = {"mmrag": 1, "model_id": model_id, "dim": dim}
        if spec:
            recorded["model"] = spec
        description = json.dumps(recorded, ensure_ascii=False)
        schema = MilvusClient.create_schema(
            auto_id=False, enable_dynamic_field=False, description=description
        )
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=MAX_ID_LENGTH)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
        schema.add_field("source", DataType.VARCHAR, max_length=MAX_SOURCE_BYTES)
        schema.add_field("caption", DataType.VARCHAR, max_length=MAX_CAPTION_BYTES)
        schema.add_field("modality", DataType.VARCHAR, max_length=MAX_MODALITY_BYTES)
        schema.add_field("metadata", DataType.JSON)
        schema.add_field("model_id", DataType.VARCHAR, max_length=MAX_MODEL_ID_BYTES)
        index = MilvusClient.prepare_index_params()
        index.add_index(
            field_name="vector",
            index_name="vector",
            index_type=self.index_type,
            metric_type=METRIC,
            params=index_params(self.index_type),
        )
        with self._call("create_collection") as client:
            client.create_collection(
                self._target,
                schema=schema,
                index_params=index,
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

    def _meta(self, *, refresh: bool = False, max_age: float | None = None) -> _Meta:
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

    def _describe(self, name: str) -> _Meta:
        """Read what mmrag recorded about a collection (or the one an alias names)."""
        with self._call("describe_collection") as client:
            desc = client.describe_collection(name, timeout=self._timeout)
            indexes = client.list_indexes(name, field_name="vector")
            index_type = "NONE"
            if indexes:
                about = client.describe_index(name, indexes[0], timeout=self._timeout)
                index_type = str(about.get("index_type", "NONE"))
        dim = 0
        for field in desc.get("fields", []):
            if field.get("name") == "vector":
                dim = int(field.get("params", {}).get("dim", 0))
        try:
            recorded = json.loads(desc.get("description") or "{}")
        except json.JSONDecodeError:
            recorded = {}
        if not isinstance(recorded, dict) or recorded.get("mmrag") != 1 or dim <= 0:
            raise StoreError(
                f"collection {name!r} at {self._where} was not created by mmrag "
                "(no mmrag description or no 'vector' field)"
            )
        spec = recorded.get("model")
        meta = _Meta(
            dim=dim,
            model_id=str(recorded.get("model_id", "")),
            index_type=index_type,
            collection=str(desc.get("collection_name") or name),
            spec=spec if isinstance(spec, dict) else None,
            at=time.monotonic(),
        )
        return meta

    def describe_target(self) -> Target:
        """Where the configured name points now (even if this store is pinned elsewhere).

        The concrete collection (a moved alias or Lite pointer followed), its model id, dim and
        model spec. The store itself keeps reading its current target until ``refresh()``.
        """
        name = self.collection
        if self._lite_db is not None:
            name = lite_aliases.resolve(self._lite_db, self.collection)
        meta = self._describe(name)
        spec = dict(meta.spec) if meta.spec is not None else None
        return Target(collection=meta.collection, model_id=meta.model_id, dim=meta.dim, spec=spec)

    def model_spec(self) -> dict[str, Any] | None:
        """How the collection's model was specified when it was created (None: not recorded)."""
        spec = self._meta(refresh=True).spec
        return dict(spec) if spec is not None else None

    def resolve(self) -> str:
        """The concrete collection this store's name reads now (an alias's current target)."""
        if self._lite_db is not None:
            return lite_aliases.resolve(self._lite_db, self.collection)
        return self._meta(refresh=True).collection

    def refresh(self) -> str:
        """Follow the name again (unpin; a moved alias is read from now on); returns the target."""
        self._pinned = False
        self._meta_cache = None
        self._target = self.collection
        if self._lite_db is not None:
            self._target = lite_aliases.resolve(self._lite_db, self.collection)
        return self._target

    # ----- aliases (a server's own; a pointer file next to a Milvus Lite file) ------------

    def set_alias(self, alias: str) -> None:
        """Point ``alias`` at this store's collection: created, or moved atomically."""
        if not COLLECTION_NAME.match(alias):
            raise ConfigError(f"alias {alias!r} is not a valid collection name")
        target = self.resolve()
        if alias == target:
            raise ConfigError(f"alias {alias!r} cannot name itself")
        if self._lite_db is not None:
            if not self.exists():
                raise CollectionNotFoundError(f"collection {target!r} does not exist")
            lite_aliases.set_alias(self._lite_db, alias, target)
            return
        with self._call("alias") as client:
            if self.describe_alias(alias) is None:
                client.create_alias(target, alias, timeout=self._timeout)
            else:
                client.alter_alias(target, alias, timeout=self._timeout)

    def create_alias(self, alias: str) -> None:
        """Make a new ``alias`` name this collection (a StoreError if it exists)."""
        if self.describe_alias(alias) is not None:
            raise StoreError(f"alias {alias!r} already exists at {self._where}")
        self.set_alias(alias)

    def alter_alias(self, alias: str) -> None:
        """Move an existing ``alias`` to this collection, atomically for its readers."""
        if self.describe_alias(alias) is None:
            raise StoreError(f"alias {alias!r} does not exist at {self._where}")
        self.set_alias(alias)

    def describe_alias(self, alias: str) -> str | None:
        """The collection ``alias`` names, or None when there is no such alias."""
        if self._lite_db is not None:
            return lite_aliases.read_aliases(self._lite_db).get(alias)
        with self._call("describe_alias") as client:
            try:
                about = client.describe_alias(alias, timeout=self._timeout)
            except MilvusException as exc:
                if "alias not found" in (exc.message or str(exc)).lower():
                    return None
                raise
        return str(about.get("collection_name") or "") or None

    def drop_alias(self, alias: str) -> bool:
        """Remove ``alias`` (its collection stays); False when there was none."""
        if self._lite_db is not None:
            return lite_aliases.drop_alias(self._lite_db, alias)
        if self.describe_alias(alias) is None:
            return False
        with self._call("drop_alias") as client:
            client.drop_alias(alias, timeout=self._timeout)
        return True

    def list_aliases(self) -> list[str]:
        """The aliases that name this store's collection."""
        target = self.resolve()
        if self._lite_db is not None:
            return sorted(a for a, c in lite_aliases.read_aliases(self._lite_db).items()
                          if c == target)
        with self._call("list_aliases") as client:
            about = client.list_aliases(target, timeout=self._timeout)
        return sorted(str(a) for a in about.get("aliases", []))

    def rename(self, new_name: str) -> None:
        """Rename the collection (server only; Lite aliases make renames unnecessary)."""
        if self._lite_db is not None:
            raise ConfigError("Milvus Lite cannot rename collections; use an alias instead")
        if not COLLECTION_NAME.match(new_name):
            raise ConfigError(f"collection name {new_name!r} is not valid")
        with self._call("rename_collection") as client:
            client.rename_collection(self.resolve(), new_name, timeout=self._slow_timeout)
        self.collection = new_name
        self.refresh()

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
        if self.is_local:
            return True
        deadline = time.monotonic() + timeout
        while True:
            total = self.count()
            with self._call("list_loaded_segments") as client:
                about = client.describe_index(self._target, "vector", timeout=self._timeout)
                segments = client.list_loaded_segments(self._target, timeout=self._timeout)
            growing = any(segment.state == SegmentState.Growing for segment in segments)
            served = sum(_indexed_rows(segment) for segment in segments)
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

    def close(self) -> None:
        """Release the connection (and the Milvus Lite process when no store uses it)."""
        client, self._client = self._client, None
        if client is not None:
            client.close()
        key, self._lite_key = self._lite_key, None
        if key is not None:
            _release_lite(key, stop=True)

    # ----- writes ---------------------------------------------------------------------

    def upsert(self, records: Sequence[Record]) -> int:
        """Insert or replace records by id in size-bounded calls; returns rows written."""
        return self._write(records, "upsert")

    def add(self, records: Sequence[Record]) -> int:
        """Write rows whose ids were just checked absent: a plain insert on Milvus Lite.

        Lite 2.5.1 runs every upsert call as a full-table-scan delete first (0.14 s per 256
        rows at 100k stored rows, ~1 s at 1M; a plain insert takes 0.03 s), and one Lite file
        has one writing process, so nothing can store the checked ids meanwhile. Servers may
        have concurrent writers (shards, Ray), so they keep upsert's replace-by-id.
        """
        return self._write(records, "insert" if self.is_local else "upsert")

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
        written = 0
        for chunk in chunks_by_size(rows, meta.dim, upsert_batch_bytes(self.is_local)):
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
        if not 1 <= batch_size <= MAX_TOPK:
            raise ConfigError(f"batch_size must be within 1..{MAX_TOPK}, got {batch_size}")
        fields = [*FIELDS, "vector"] if with_vectors else list(FIELDS)
        last: str | None = None
        while True:
            expr = "" if last is None else f"id > {quote_string(last)}"
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
        if k < 1 or offset < 0:
            raise ConfigError(f"k must be >= 1 and offset >= 0 (got k={k}, offset={offset})")
        if k + offset > MAX_TOPK:
            raise ConfigError(
                f"k + offset must be at most {MAX_TOPK} in Milvus (got {k} + {offset})"
            )
        meta = self._meta(max_age=None if self._pinned or self.is_local else META_TTL_S)
        queries = np.asarray(vectors, dtype=np.float32)
        if queries.ndim == 1:
            queries = queries[None, :]
        if queries.ndim != 2 or queries.shape[1] != meta.dim:
            raise ModelMismatchError(
                f"query vectors have shape {tuple(queries.shape)}, collection "
                f"{self.collection!r} (model {meta.model_id!r}) has dim {meta.dim}"
            )
        if not np.isfinite(queries).all():
            raise StoreError("query vectors must be finite")
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


def _indexed_rows(segment: Any) -> int:
    """Rows a loaded segment serves sealed (0 for growing segments).

    Sealed segments are searched through the index, or exhaustively when they are too small to
    be indexed (Milvus skips segments under ~1024 rows).
    """
    return int(segment.num_rows) if segment.state in _SEALED else 0


def _import_milvus_lite() -> None:
    """Import milvus_lite quietly (it warns about pkg_resources on import)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
        import milvus_lite.server_manager  # noqa: F401


def _release_lite(path: str, *, stop: bool) -> None:
    """Drop one user of a Milvus Lite file; stop its process when none is left."""
    from milvus_lite.server_manager import server_manager_instance

    with _lite_lock:
        users = _lite_users.get(path, 0) - 1
        if users > 0:
            _lite_users[path] = users
            return
        _lite_users.pop(path, None)
    if stop:
        server_manager_instance.release_server(path)
