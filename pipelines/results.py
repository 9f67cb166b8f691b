"""What ``p(x)`` and ``p.batch(...)`` return: every row of a finished run (towhee's DataQueue)."""

from __future__ import annotations

import enum
from collections.abc import Iterator, Sequence
from typing import Any

from pipelines.plan import Plan
from pipelines.schema import Schema


class ColumnType(enum.Enum):
    """towhee's column kinds: one value per input (SCALAR) or one per row (QUEUE)."""

    SCALAR = 0
    QUEUE = 1


def column_types(plan: Plan) -> list[ColumnType]:
    """The kind of each output column of a plan."""
    return [ColumnType.SCALAR if col.scalar else ColumnType.QUEUE for col in plan.out_cols]


class ListResult:
    """A finished run's rows, read like towhee's DataQueue (``get``, ``get_dict``, ``to_list``).

    Reading consumes rows (``size`` is what is left); ``reset_size()`` rewinds, as
    ``DataCollection`` does not need to.
    """

    def __init__(
        self,
        schema: Schema | Sequence[str],
        rows: list[list[Any]],
        type_schema: Sequence[ColumnType] | None = None,
    ) -> None:
        self._schema = list(schema)
        self._rows = rows
        self._pos = 0
        self._types = list(type_schema) if type_schema is not None else [ColumnType.QUEUE] * len(
            self._schema
        )

    @property
    def schema(self) -> list[str]:
        """Output column names."""
        return self._schema

    @property
    def type_schema(self) -> list[ColumnType]:
        """Each output column's kind (towhee's ``type_schema``)."""
        return self._types

    @property
    def size(self) -> int:
        """Rows not yet read."""
        return len(self._rows) - self._pos

    def __len__(self) -> int:
        return self.size

    def get(self) -> list[Any] | None:
        """The next row, or None when exhausted."""
        if self._pos >= len(self._rows):
            return None
        self._pos += 1
        return self._rows[self._pos - 1]

    def get_dict(self, cols: list[str] | None = None) -> dict[str, Any] | None:
        """The next row as ``{column: value}`` (optionally only ``cols``)."""
        row = self.get()
        if row is None:
            return None
        return {k: v for k, v in zip(self._schema, row, strict=True) if cols is None or k in cols}

    def to_list(self, kv_format: bool = False) -> list[Any]:
        """Every remaining row (as lists, or dicts with ``kv_format=True``)."""
        rows = self._rows[self._pos :]
        self._pos = len(self._rows)
        return [dict(zip(self._schema, r, strict=True)) for r in rows] if kv_format else rows

    def reset_size(self) -> None:
        """Make every row readable again."""
        self._pos = 0

    def __iter__(self) -> Iterator[list[Any]]:
        while (row := self.get()) is not None:
            yield row

    def close(self) -> None:
        """Nothing to stop: the run has finished."""

    def __enter__(self) -> ListResult:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        cols = ", ".join(f"{n}: {t}" for n, t in zip(self._schema, self._types, strict=True))
        return f"<ListResult Schema[{cols}] SIZE {self.size}>"
