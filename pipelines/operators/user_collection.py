"""A collection the user created with pymilvus, written and searched by its own schema.

As towhee's ``ann_insert.milvus_client`` does, an insert call's values fill the schema's fields
in order (an ``auto_id`` primary key is skipped); search returns ``[id, score, *output_fields]``
with the id in the key's own type and the score as the collection's metric reports it (an L2
distance: lower is nearer).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pymilvus import DataType, MilvusClient
from pymilvus.exceptions import MilvusException

from retrieval.errors import ConfigError, StoreError

VECTOR_TYPES = (DataType.FLOAT_VECTOR, DataType.FLOAT16_VECTOR, DataType.BFLOAT16_VECTOR)
INT_TYPES = (DataType.INT8, DataType.INT16, DataType.INT32, DataType.INT64)
FLOAT_TYPES = (DataType.FLOAT, DataType.DOUBLE)
TEXT_TYPES = (DataType.VARCHAR,)
# towhee's defaults for the search params of each index type.
SEARCH_PARAMS: dict[str, dict[str, Any]] = {
    "IVF_FLAT": {"nprobe": 10},
    "IVF_SQ8": {"nprobe": 10},
    "IVF_PQ": {"nprobe": 10},
    "HNSW": {"ef": 64},
}
DEFAULT_METRIC = "L2"  # what Milvus and towhee assume for a collection without an index


@dataclass(frozen=True)
class Field:
    """One field of the user's schema."""

    name: str
    dtype: DataType
    dim: int = 0


@dataclass(frozen=True)
class UserSchema:
    """What inserting and searching need to know about the user's collection."""

    name: str
    primary: Field
    auto_id: bool
    vector: Field
    fields: tuple[Field, ...]  # every field, in schema order

    @property
    def insert_fields(self) -> tuple[Field, ...]:
        """The fields an insert call fills, in order (an auto_id key is left out)."""
        return tuple(f for f in self.fields if not (self.auto_id and f is self.primary))


def read_schema(name: str, desc: dict[str, Any]) -> UserSchema:
    """The schema of ``describe_collection``'s answer; StoreError without key or vector field."""
    fields: list[Field] = []
    primary: Field | None = None
    vector: Field | None = None
    auto_id = bool(desc.get("auto_id"))
    for raw in desc.get("fields", []):
        dtype = DataType(raw.get("type"))
        field = Field(str(raw["name"]), dtype, int(raw.get("params", {}).get("dim", 0) or 0))
        fields.append(field)
        if raw.get("is_primary"):
            primary = field
            auto_id = auto_id or bool(raw.get("auto_id"))
        elif dtype in VECTOR_TYPES and vector is None:
            vector = field
    if primary is None or vector is None:
        raise StoreError(f"collection {name!r} has no primary key or no float vector field")
    return UserSchema(name, primary, auto_id, vector, tuple(fields))


def _value(field: Field, value: Any) -> Any:
    """A value in the field's type (numpy scalars and arrays become plain Python)."""
    try:
        if field.dtype in VECTOR_TYPES:
            vec = np.asarray(value, dtype=np.float32).reshape(-1)
            if field.dim and vec.shape[0] != field.dim:
                raise ValueError(f"{vec.shape[0]} numbers, but the field holds {field.dim}")
            return vec.tolist()
        if field.dtype in INT_TYPES:
            return int(value)
        if field.dtype in FLOAT_TYPES:
            return float(value)
        if field.dtype in TEXT_TYPES:
            return str(value)
        if field.dtype == DataType.BOOL:
            return bool(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"field {field.name!r} ({field.dtype.name}) cannot hold {value!r:.80}: {exc}"
        ) from exc
    return value


class UserCollection:
    """Insert into and search a user's collection through one client."""

    def __init__(self, client: MilvusClient, schema: UserSchema) -> None:
        self.client = client
        self.schema = schema
        self.metric, self.index_type = self._index()
        self._loaded = False

    def _index(self) -> tuple[str, str]:
        """(metric, index type) of the vector field's index; L2 and FLAT without one."""
        name, field = self.schema.name, self.schema.vector.name
        for index in self.client.list_indexes(name, field_name=field):
            info = self.client.describe_index(name, index)
            return str(info.get("metric_type") or DEFAULT_METRIC), str(info.get("index_type"))
        return DEFAULT_METRIC, "FLAT"

    def insert(self, values: Sequence[Any]) -> dict[str, Any]:
        """Insert one row (a value per insert field) or, if the vector value is a list of
        vectors, one row per vector from parallel lists; returns Milvus's insert result."""
        fields = self.schema.insert_fields
        if len(values) != len(fields):
            listing = ", ".join(f"{f.name} ({f.dtype.name})" for f in fields)
            raise ValueError(
                f"collection {self.schema.name!r} takes {len(fields)} value(s) per row, in "
                f"schema order: {listing}; the pipeline passed {len(values)}. Map the columns "
                f"in that order, e.g. .map(({', '.join(repr(f.name) for f in fields)}), (), op)."
            )
        position = fields.index(self.schema.vector)
        if _is_batch(values[position]):
            columns = [v if isinstance(v, list) else [v] * len(values[position]) for v in values]
            names = [f.name for f in fields]
            rows = [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]
        else:
            rows = [{f.name: v for f, v in zip(fields, values, strict=True)}]
        data = [{f.name: _value(f, row[f.name]) for f in fields} for row in rows]
        return dict(self.client.insert(self.schema.name, data))

    def search(
        self,
        vectors: Sequence[Any],
        limit: int,
        output_fields: Sequence[str],
        expr: str | None,
        params: dict[str, Any] | None,
    ) -> list[list[list[Any]]]:
        """For each query vector, its nearest rows as ``[id, score, *output_fields]``."""
        self._ensure_loaded()
        search_params = {
            "metric_type": self.metric,
            "params": params if params is not None else SEARCH_PARAMS.get(self.index_type, {}),
        }
        data = [_value(self.schema.vector, v) for v in vectors]
        results = self.client.search(
            self.schema.name,
            data=data,
            anns_field=self.schema.vector.name,
            limit=limit,
            output_fields=list(output_fields),
            search_params=search_params,
            filter=expr or "",
            consistency_level="Strong",
        )
        return [
            [[hit["id"], hit["distance"], *(hit["entity"].get(f) for f in output_fields)]
             for hit in hits]
            for hits in results
        ]

    def check_fields(self, output_fields: Sequence[str]) -> None:
        """ConfigError naming the collection's fields if one asked for is not among them."""
        known = [f.name for f in self.schema.fields]
        unknown = [f for f in output_fields if f not in known]
        if unknown:
            raise ConfigError(
                f"collection {self.schema.name!r} has no field(s) {unknown}; its fields are {known}"
            )

    def _ensure_loaded(self) -> None:
        """Load the collection before its first search (towhee's notebooks call load())."""
        if self._loaded:
            return
        name = self.schema.name
        state = str(self.client.get_load_state(name).get("state", ""))
        if "Loaded" not in state or "NotLoad" in state:
            try:
                self.client.load_collection(name)
            except MilvusException as exc:
                raise StoreError(
                    f"cannot load collection {name!r} for search ({exc.message}); create an "
                    f"index on {self.schema.vector.name!r} first, as the towhee notebooks do"
                ) from exc
        self._loaded = True

    def flush(self) -> None:
        """Seal inserted rows, so pymilvus's ``num_entities`` counts them."""
        self.client.flush(self.schema.name)


def _is_batch(vector_value: Any) -> bool:
    """Whether a vector column value is a list of vectors (a batched call), not one vector."""
    if not isinstance(vector_value, list):
        return False
    return not vector_value or isinstance(vector_value[0], np.ndarray | list | tuple)
