"""The collection mmrag creates on Milvus: its schema, its vector index, and what it records.

A collection's description holds ``{"mmrag": 1, "model_id": ..., "dim": ..., "model": spec}``,
so the model that built it can be checked and loaded again from the collection alone.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from pymilvus import DataType, MilvusClient
from pymilvus.client.types import SegmentState
from pymilvus.milvus_client.index import IndexParams

from retrieval.errors import StoreError
from retrieval.ids import MAX_ID_LENGTH
from retrieval.stores.base import Target
from retrieval.stores.milvus_rows import (
    MAX_CAPTION_BYTES,
    MAX_MODALITY_BYTES,
    MAX_MODEL_ID_BYTES,
    MAX_SOURCE_BYTES,
    index_params,
)

_SEALED = (SegmentState.Sealed, SegmentState.Flushed)
# A server's indexCoord.segment.minSegmentNumRowsToEnableIndex (its default): smaller sealed
# segments are never indexed.
MIN_INDEXED_SEGMENT_ROWS = 1024


@dataclass(frozen=True)
class CollectionMeta:
    """What mmrag recorded about a collection when it created it, and when it was read."""

    dim: int
    model_id: str
    index_type: str
    collection: str  # the concrete collection (an alias resolved)
    spec: dict[str, Any] | None  # how to load the model again (see ensure_collection)
    at: float

    def target(self) -> Target:
        """The concrete collection and its model, for callers (the spec copied)."""
        spec = dict(self.spec) if self.spec is not None else None
        return Target(collection=self.collection, model_id=self.model_id, dim=self.dim, spec=spec)


def build_schema(dim: int, model_id: str, spec: dict[str, Any] | None) -> Any:
    """The schema of a new collection, its description recording the model."""
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
    return schema


def build_index(index_type: str, metric: str) -> IndexParams:
    """The vector index of a new collection."""
    index = MilvusClient.prepare_index_params()
    index.add_index(
        field_name="vector",
        index_name="vector",
        index_type=index_type,
        metric_type=metric,
        params=index_params(index_type),
    )
    return index


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
    return CollectionMeta(
        dim=dim,
        model_id=str(recorded.get("model_id", "")),
        index_type=index_type,
        collection=str(desc.get("collection_name") or name),
        spec=spec if isinstance(spec, dict) else None,
        at=time.monotonic(),
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
