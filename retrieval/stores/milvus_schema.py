"""The collection mmrag creates on Milvus: its schema, its vector index, and what it records.

A collection's description holds ``{"mmrag": 1, "model_id": ..., "dim": ..., "model": spec}``,
so the model that built it can be checked and loaded again from the collection alone. A
collection with the BM25 text index (Milvus 2.5+) also records ``"text": {"columns": [...]}``:
its ``text`` field (caption, file name and those metadata columns, analysed) feeds a BM25
function into the sparse ``text_sparse`` field, searched by keyword and hybrid search.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pymilvus import DataType, Function, FunctionType, MilvusClient
from pymilvus.client.types import SegmentState
from pymilvus.milvus_client.index import IndexParams

from retrieval.errors import ConfigError, StoreError
from retrieval.ids import MAX_ID_LENGTH
from retrieval.stores.base import Target
from retrieval.stores.milvus_rows import (
    MAX_CAPTION_BYTES,
    MAX_MODALITY_BYTES,
    MAX_MODEL_ID_BYTES,
    MAX_SOURCE_BYTES,
    index_params,
    truncate_utf8,
)

_SEALED = (SegmentState.Sealed, SegmentState.Flushed)
# A server's indexCoord.segment.minSegmentNumRowsToEnableIndex (its default): smaller sealed
# segments are never indexed.
MIN_INDEXED_SEGMENT_ROWS = 1024
TEXT_FIELD = "text"
SPARSE_FIELD = "text_sparse"
MAX_TEXT_BYTES = 8192
# Milvus's English analyzer: standard tokens, lower case, English stop words ("a red circle"
# must not match every code that starts with A-) and stemming ("chairs" finds "chair").
TEXT_ANALYZER = {"type": "english"}


@dataclass(frozen=True)
class CollectionMeta:
    """What mmrag recorded about a collection when it created it, and when it was read."""

    dim: int
    model_id: str
    index_type: str
    collection: str  # the concrete collection (an alias resolved)
    spec: dict[str, Any] | None  # how to load the model again (see ensure_collection)
    at: float
    text_columns: tuple[str, ...] | None = None  # None: no text index; else its metadata columns

    def target(self) -> Target:
        """The concrete collection and its model, for callers (the spec copied)."""
        spec = dict(self.spec) if self.spec is not None else None
        return Target(collection=self.collection, model_id=self.model_id, dim=self.dim, spec=spec)


def build_schema(
    dim: int,
    model_id: str,
    spec: dict[str, Any] | None,
    text_columns: tuple[str, ...] | None = None,
) -> Any:
    """The schema of a new collection, its description recording the model (and text index).

    ``text_columns`` None: today's schema without the text index (servers before 2.5).
    """
    recorded: dict[str, Any] = {"mmrag": 1, "model_id": model_id, "dim": dim}
    if spec:
        recorded["model"] = spec
    if text_columns is not None:
        recorded["text"] = {"columns": list(text_columns)}
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
    if text_columns is not None:
        schema.add_field(
            TEXT_FIELD, DataType.VARCHAR, max_length=MAX_TEXT_BYTES,
            enable_analyzer=True, enable_match=True, analyzer_params=TEXT_ANALYZER,
        )
        schema.add_field(SPARSE_FIELD, DataType.SPARSE_FLOAT_VECTOR)
        schema.add_function(
            Function(
                name="text_bm25",
                function_type=FunctionType.BM25,
                input_field_names=[TEXT_FIELD],
                output_field_names=[SPARSE_FIELD],
            )
        )
    return schema


def build_index(index_type: str, metric: str, *, text_index: bool = False) -> IndexParams:
    """The vector index of a new collection (and the BM25 index of its text, if it has one)."""
    index = MilvusClient.prepare_index_params()
    index.add_index(
        field_name="vector",
        index_name="vector",
        index_type=index_type,
        metric_type=metric,
        params=index_params(index_type),
    )
    if text_index:
        index.add_index(
            field_name=SPARSE_FIELD,
            index_name=SPARSE_FIELD,
            index_type="SPARSE_INVERTED_INDEX",
            metric_type="BM25",
        )
    return index


def check_text_columns(columns: Any) -> tuple[str, ...]:
    """Metadata column names for the text index: non-empty, unique, plain names."""
    names = tuple(str(c).strip() for c in columns)
    for name in names:
        if not name or len(name) > 128 or any(ch in name for ch in "\"'[]"):
            raise ConfigError(
                f"text column {name!r} is not a usable column name: name manifest columns "
                "such as title or sku, separated by commas"
            )
    return tuple(dict.fromkeys(names))


def searchable_text(
    caption: str, source: str, metadata: Mapping[str, Any], columns: tuple[str, ...]
) -> str:
    """What the text index holds for a row: caption, file name, then the named columns."""
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        name = source.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0]
    parts = [caption, name]
    for column in columns:
        value = metadata.get(column)
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            parts.append(str(value))
        elif isinstance(value, list):
            parts.extend(str(v) for v in value if isinstance(v, str | int | float))
    return truncate_utf8(" \n".join(p for p in parts if p), MAX_TEXT_BYTES)


def read_meta(desc: dict[str, Any], index_type: str, name: str, where: str) -> CollectionMeta:
    """What mmrag recorded, from ``describe_collection``; a StoreError if mmrag did not make it."""
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
            f"collection {name!r} at {where} was not created by mmrag "
            "(no mmrag description or no 'vector' field)"
        )
    spec = recorded.get("model")
    text = recorded.get("text")
    columns = None
    if isinstance(text, dict) and isinstance(text.get("columns"), list):
        columns = tuple(str(c) for c in text["columns"])
    return CollectionMeta(
        dim=dim,
        model_id=str(recorded.get("model_id", "")),
        index_type=index_type,
        collection=str(desc.get("collection_name") or name),
        spec=spec if isinstance(spec, dict) else None,
        at=time.monotonic(),
        text_columns=columns,
    )


def indexed_rows(segment: Any) -> int:
    """Rows a loaded segment serves through the vector index (0 for growing segments).

    A sealed segment is first loaded without its index (its ``index_id`` is 0) and searched
    through Milvus's interim IVF index (nprobe 16 of 128 lists: recall ~0.5) until the query
    node reloads it with the built index. Segments too small to be indexed never get one and
    are searched exhaustively, so they count as soon as they are sealed.
    """
    if segment.state not in _SEALED:
        return 0
    rows = int(segment.num_rows)
    with_index = bool(getattr(segment, "index_id", 0))
    return rows if with_index or rows < MIN_INDEXED_SEGMENT_ROWS else 0


def is_growing(segment: Any) -> bool:
    """Whether a loaded segment still takes writes (searched without the index)."""
    return bool(segment.state == SegmentState.Growing)
