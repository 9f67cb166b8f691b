"""The filterable fields of a collection, sampled from its stored rows.

One sample answers both questions asked about fields: which metadata keys a filter may name
(the API's and the CLI's filter check) and what a filter control can offer (``GET /fields``:
each field's value types and, when few, its values).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from retrieval.filters import COLUMNS, build_expression, requested_keys
from retrieval.stores.base import VectorStore

SAMPLE_ROWS = 2000
SAMPLE_BATCH = 500
MAX_FIELD_VALUES = 30
MAX_VALUE_CHARS = 80


@dataclass
class FieldStats:
    """Value types and (while few and short) the values seen for one field."""

    types: set[str] = field(default_factory=set)
    values: set[Any] = field(default_factory=set)
    too_many: bool = False
    count: int = 0

    def add(self, value: Any) -> None:
        """Count one stored value."""
        self.count += 1
        kind = _kind(value)
        self.types.add(kind)
        if kind == "other" or (isinstance(value, str) and len(value) > MAX_VALUE_CHARS):
            self.too_many = True
        elif not self.too_many:
            self.values.add(value)
            self.too_many = len(self.values) > MAX_FIELD_VALUES


@dataclass(frozen=True)
class FieldInfo:
    """A field the search filter accepts, as sampled."""

    name: str  # the filter key (`metadata.<key>` when it shadows a column)
    kind: str  # column | metadata
    types: list[str]
    values: list[Any] | None  # every value seen, when few; else None
    count: int  # sampled rows that have the field


@dataclass(frozen=True)
class FieldSample:
    """What up to ``SAMPLE_ROWS`` stored rows say about a collection's fields."""

    rows: int
    fields: list[FieldInfo]
    metadata_keys: frozenset[str]


def sample_fields(store: VectorStore, rows: int = SAMPLE_ROWS) -> FieldSample:
    """Columns and metadata keys of up to ``rows`` stored records (blocking)."""
    stats: dict[str, FieldStats] = {}
    modality = FieldStats()
    seen = 0
    for batch in store.iterate(batch_size=min(SAMPLE_BATCH, rows), with_vectors=False):
        for record in batch:
            modality.add(getattr(record.modality, "value", str(record.modality)))
            for key, value in record.metadata.items():
                if isinstance(key, str):
                    stats.setdefault(key, FieldStats()).add(value)
        seen += len(batch)
        if seen >= rows:
            break
    fields = [
        FieldInfo(name=name, kind="column", types=["string"], count=seen,
                  values=sorted(modality.values) if name == "modality" and seen else None)
        for name in COLUMNS
    ]
    for key in sorted(stats):
        entry = stats[key]
        values = None if entry.too_many else sorted(entry.values, key=_order)
        name = f"metadata.{key}" if key in COLUMNS else key
        fields.append(FieldInfo(name=name, kind="metadata", types=sorted(entry.types),
                                values=values, count=entry.count))
    return FieldSample(rows=seen, fields=fields, metadata_keys=frozenset(stats))


def filter_expression(spec: Mapping[str, Any], store: VectorStore) -> str | None:
    """A structured filter as a safe expression (None when empty), its keys checked against
    a fresh sample of the store (blocking; ``FilterError`` when it is invalid)."""
    wanted = requested_keys(spec)
    keys = sample_fields(store).metadata_keys if wanted else frozenset()
    return build_expression(spec, keys)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number" if math.isfinite(value) else "other"
    return "string" if isinstance(value, str) else "other"


def _order(value: Any) -> tuple[int, Any]:
    """Sort mixed values: booleans, numbers, then strings."""
    if isinstance(value, bool):
        return (0, value)
    return (1, value) if isinstance(value, int | float) else (2, str(value))
