"""Milvus store helpers that need no pymilvus: limits, URIs, index choices, rows and records."""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from retrieval.errors import ConfigError, ModelMismatchError, StoreError
from retrieval.ids import MAX_ID_LENGTH
from retrieval.limits import MAX_TOPK as MAX_TOPK  # milvus.py imports it from here
from retrieval.stores import is_local_uri
from retrieval.types import Hit, Modality, Record

METRIC = "IP"
MAX_SOURCE_BYTES = 2048
MAX_CAPTION_BYTES = 4096
MAX_MODALITY_BYTES = 16
MAX_MODEL_ID_BYTES = 256
# Bytes per upsert call, measured with MilvusStore.upsert of 512-d rows (docs/benchmarks.md,
# "Store"; `mmrag bench --sections store`). Milvus Lite 2.5.1 runs each upsert as a SQLite
# `DELETE ... WHERE milvus_id IN (...)` on an unindexed column, a full table scan per call
# (~1 us per stored row: ~1 s a call at 1M rows), so calls must stay large as a file grows,
# while its cost per row also climbs with the call size (2.7x from 0.25 to 4 MiB, a cliff at
# 8 MiB). 2 MiB is the best compromise from an empty file to 1M rows (0.5 MiB: ~2x faster
# empty, 2.1x slower at 200k rows, ~3x slower at 1M). A server shows no such penalty (2.3.5
# standalone on loopback: the same CPU per row from 1 to 8 MiB), so it gets fewer, larger
# calls (one round trip each); Milvus caps a request at 64 MB.
BATCH_BYTES = 2 * 1024 * 1024  # per upsert call to Milvus Lite
SERVER_BATCH_BYTES = 8 * 1024 * 1024  # per upsert call to a Milvus server
IDS_PER_CALL = 256  # ids per `id in [...]` query or delete
QUERIES_PER_CALL = 256  # query vectors per search call
HNSW_BUILD = {"M": 16, "efConstruction": 200}
HNSW_EF = 128  # measured recall@10 on 5k random 64-d unit vectors: ef 64 -> 0.90, 128 -> 0.98
HNSW_MAX_EF = 32768
# Milvus Lite 2.5.1 ignores both: from 100k rows on it serves IVF_FLAT (and AUTOINDEX) from
# segcore's interim index with fixed parameters; below 100k rows it searches exhaustively.
IVF_NLIST = 128
IVF_NPROBE = 16
IVF_MAX_NPROBE = 65536
LITE_INDEXES = ("FLAT", "IVF_FLAT", "AUTOINDEX")
SERVER_INDEXES = ("FLAT", "HNSW", "IVF_FLAT", "AUTOINDEX")
FIELDS = ("id", "source", "caption", "modality", "metadata", "model_id")
COLLECTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}\Z")
_LITE_FILE_NAME = re.compile(r"[A-Za-z0-9.\-_]{1,36}\Z")


def redact_uri(uri: str) -> str:
    """The URI without any user:password part, for messages."""
    if is_local_uri(uri):
        return uri
    parts = urlsplit(uri)
    if parts.password is None and parts.username is None:
        return uri
    host = parts.hostname or ""
    netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def lite_path(uri: str) -> Path:
    """Resolve and check a Milvus Lite file path (``.db`` suffix, a name Lite accepts)."""
    path = Path(uri.strip()).expanduser().resolve()
    if path.suffix != ".db":
        raise ConfigError(f"Milvus Lite file must end with .db: {uri!r}")
    if not _LITE_FILE_NAME.match(path.name):
        raise ConfigError(
            f"Milvus Lite file name {path.name!r} must be at most 36 characters of "
            "letters, digits, '.', '-' or '_'"
        )
    return path


def resolve_index_type(index_type: str, *, local: bool) -> str:
    """The concrete index type for this backend, or a ConfigError naming the choices."""
    wanted = index_type.strip().upper()
    if wanted == "AUTO":
        return "FLAT" if local else "HNSW"
    supported = LITE_INDEXES if local else SERVER_INDEXES
    if wanted not in supported:
        backend = "Milvus Lite" if local else "a Milvus server"
        raise ConfigError(
            f"index type {index_type!r} is not supported on {backend}; "
            f"use auto or one of {', '.join(supported)}"
        )
    return wanted


def index_params(index_type: str) -> dict[str, Any]:
    """Build parameters for an index type."""
    if index_type == "HNSW":
        return dict(HNSW_BUILD)
    if index_type == "IVF_FLAT":
        return {"nlist": IVF_NLIST}
    return {}


def search_params(
    index_type: str, topk: int, hnsw_ef: int, nprobe: int = IVF_NPROBE
) -> dict[str, Any]:
    """Search-time parameters for an index type (HNSW ef is never below topk)."""
    if index_type == "HNSW":
        return {"ef": min(HNSW_MAX_EF, max(hnsw_ef, topk))}
    if index_type == "IVF_FLAT":
        return {"nprobe": nprobe}
    return {}


def truncate_utf8(text: str, max_bytes: int) -> str:
    """Cut text to at most max_bytes of UTF-8 without splitting a character."""
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    return data[:max_bytes].decode("utf-8", errors="ignore")


def storable_id(record_id: str) -> bool:
    """Whether an id can be written, filtered and deleted on both Lite and server."""
    if not isinstance(record_id, str) or not record_id:
        return False
    try:
        size = len(record_id.encode("utf-8"))
    except UnicodeEncodeError:
        return False
    if size > MAX_ID_LENGTH or "'" in record_id:
        return False
    return not any(unicodedata.category(ch) == "Cc" for ch in record_id)


def check_id(record_id: str) -> None:
    """Refuse ids that cannot be stored and found again on every backend."""
    if not storable_id(record_id):
        raise StoreError(
            f"record id {str(record_id)[:40]!r} is not storable: ids must be 1 to "
            f"{MAX_ID_LENGTH} UTF-8 bytes without control characters or single quotes "
            "(Milvus Lite 2.5.1 fails upserts and deletes of ids containing ')"
        )


def unique_ids(ids: Iterable[str]) -> list[str]:
    """Storable ids without repeats, in first-seen order (others cannot be stored anyway)."""
    return [i for i in dict.fromkeys(ids) if storable_id(i)]


def batches(items: list[str], size: int) -> Iterator[list[str]]:
    """Consecutive slices of at most size items."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def upsert_batch_bytes(local: bool) -> int:
    """Bytes per upsert call: BATCH_BYTES for Milvus Lite, SERVER_BATCH_BYTES for a server."""
    return BATCH_BYTES if local else SERVER_BATCH_BYTES


def chunks_by_size(
    rows: list[dict[str, Any]], dim: int, max_bytes: int | None = None
) -> Iterator[list[dict[str, Any]]]:
    """Group rows so that each upsert call carries about max_bytes (BATCH_BYTES) at most."""
    limit = BATCH_BYTES if max_bytes is None else max_bytes
    chunk: list[dict[str, Any]] = []
    size = 0
    for row in rows:
        text = sum(len(str(row[name]).encode("utf-8")) for name in ("id", "source", "caption"))
        row_size = 4 * dim + 64 + text + len(json.dumps(row["metadata"]))
        if chunk and size + row_size > limit:
            yield chunk
            chunk, size = [], 0
        chunk.append(row)
        size += row_size
    if chunk:
        yield chunk


def to_row(record: Record, *, dim: int, model_id: str, collection: str) -> dict[str, Any]:
    """Check one record and turn it into a Milvus row (caption truncated to 4096 bytes)."""
    check_id(record.id)
    if record.model_id and record.model_id != model_id:
        raise ModelMismatchError(
            f"record {record.id!r} comes from model {record.model_id!r} but collection "
            f"{collection!r} holds model {model_id!r}"
        )
    vector = np.asarray(record.vector, dtype=np.float32).reshape(-1)
    if vector.shape[0] != dim:
        raise ModelMismatchError(
            f"record {record.id!r} has dim {vector.shape[0]}, collection "
            f"{collection!r} (model {model_id!r}) has dim {dim}"
        )
    if not np.isfinite(vector).all():
        raise StoreError(f"record {record.id!r} has a non-finite vector")
    for name, text in (("source", record.source), ("caption", record.caption)):
        _check_utf8(record.id, name, text)
    if len(record.source.encode("utf-8")) > MAX_SOURCE_BYTES:
        raise StoreError(f"record {record.id!r}: source is over {MAX_SOURCE_BYTES} bytes")
    try:
        metadata = json.loads(json.dumps(dict(record.metadata), allow_nan=False))
    except (TypeError, ValueError, RecursionError) as exc:
        raise StoreError(f"record {record.id!r}: metadata is not plain JSON: {exc}") from exc
    _check_utf8(record.id, "metadata", json.dumps(metadata, ensure_ascii=False))
    return {
        "id": record.id,
        "vector": vector,
        "source": record.source,
        "caption": truncate_utf8(record.caption, MAX_CAPTION_BYTES),
        "modality": Modality(record.modality).value,
        "metadata": metadata,
        "model_id": model_id,
    }


def _check_utf8(record_id: str, name: str, text: str) -> None:
    """StoreError for text UTF-8 cannot hold (surrogate escapes of a non-UTF-8 file name)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise StoreError(
            f"record {record_id!r}: {name} is not valid UTF-8 (store non-UTF-8 file names with "
            "retrieval.image_rows.image_record, which keeps their bytes in the metadata)"
        ) from exc


def _vector(value: Any) -> np.ndarray | None:
    """A stored vector as float32, or None when it was not asked for."""
    if value is None:
        return None
    return np.asarray(value, dtype=np.float32)


def _metadata(value: Any) -> Mapping[str, Any]:
    """Stored JSON metadata as a mapping (JSON text is decoded)."""
    if isinstance(value, str | bytes):
        value = json.loads(value)
    return value if isinstance(value, dict) else {}


def to_record(row: Mapping[str, Any]) -> Record:
    """A query row as a Record (an empty vector when vectors were not asked for)."""
    vector = _vector(row.get("vector"))
    return Record(
        id=str(row["id"]),
        vector=vector if vector is not None else np.zeros(0, dtype=np.float32),
        source=str(row.get("source", "")),
        caption=str(row.get("caption", "")),
        modality=Modality(row.get("modality") or Modality.IMAGE.value),
        metadata=_metadata(row.get("metadata")),
        model_id=str(row.get("model_id", "")),
    )


def to_hit(found: Mapping[str, Any]) -> Hit:
    """One pymilvus search hit as a Hit; score is the IP distance."""
    entity = found.get("entity") or {}
    return Hit(
        id=str(found.get("id", entity.get("id", ""))),
        score=float(found.get("distance", math.nan)),
        source=str(entity.get("source", "")),
        caption=str(entity.get("caption", "")),
        modality=Modality(entity.get("modality") or Modality.IMAGE.value),
        metadata=_metadata(entity.get("metadata")),
        model_id=str(entity.get("model_id", "")),
        vector=_vector(entity.get("vector")),
    )
