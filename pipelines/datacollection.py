"""``DataCollection``: towhee's table of a pipeline's result (``show()``, ``to_list()``).

``DataCollection(p(x))`` reads every row of a result; it also takes towhee's ``to_dict()`` form
and a list (of dicts, or of plain values as one ``value`` column).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import Any

from pipelines.display import grid, html_table, in_notebook
from pipelines.results import ColumnType


class Entity:
    """One row: its columns are attributes (``e.text``) and items (``e['text']``)."""

    def __init__(self, **columns: Any) -> None:
        self.__dict__.update(columns)

    def __getitem__(self, key: str) -> Any:
        return self.__dict__[key]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Entity) or other.__dict__.keys() != self.__dict__.keys():
            return False
        pairs = zip(self.__dict__.values(), other.__dict__.values(), strict=True)
        return all(_same(a, b) for a, b in pairs)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<Entity {self.__dict__.keys()}>"


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b) if not hasattr(a, "shape") else bool((a == b).all())
    except (TypeError, ValueError):
        return a is b


class DataCollection:
    """The rows of a result as entities, shown as a table."""

    def __init__(self, data: Any) -> None:
        if isinstance(data, Mapping):
            self._schema = list(data["schema"])
            self._types = [ColumnType[name] for name in data.get("type_schema", [])] or [
                ColumnType.QUEUE
            ] * len(self._schema)
            rows = [list(row) for row in data["iterable"]]
        elif isinstance(data, list):
            self._schema, rows = _list_rows(data)
            self._types = [ColumnType.QUEUE] * len(self._schema)
        elif hasattr(data, "schema") and hasattr(data, "get"):
            self._schema = list(data.schema)
            self._types = list(getattr(data, "type_schema", [ColumnType.QUEUE] * len(self._schema)))
            rows = []
            while (row := data.get()) is not None:
                rows.append(list(row))
        else:
            raise TypeError(
                f"DataCollection takes a pipeline result, a list or a to_dict() dict, not "
                f"{type(data).__name__}"
            )
        self._entities = [Entity(**dict(zip(self._schema, row, strict=True))) for row in rows]

    @property
    def schema(self) -> list[str]:
        """Column names."""
        return list(self._schema)

    def __iter__(self) -> Iterator[Entity]:
        return iter(self._entities)

    def __getitem__(self, index: int) -> Entity:
        return self._entities[index]

    def __setitem__(self, index: int, value: Entity) -> None:
        self._entities[index] = value

    def __len__(self) -> int:
        return len(self._entities)

    def __add__(self, other: DataCollection) -> DataCollection:
        joined = copy.copy(self)
        joined._entities = self._entities + other._entities
        return joined

    def __repr__(self) -> str:
        cols = ", ".join(f"{n}: {t}" for n, t in zip(self._schema, self._types, strict=True))
        return f"<DataCollection Schema[{cols}] SIZE {len(self)}>"

    def to_list(self) -> list[Entity]:
        """The rows as entities."""
        return list(self._entities)

    def copy(self, deep: bool = False) -> DataCollection:
        """A copy (entities shared unless ``deep``)."""
        return copy.deepcopy(self) if deep else copy.copy(self)

    def to_dict(self) -> dict[str, Any]:
        """towhee's serialisable form: schema, type names and rows."""
        return {
            "schema": list(self._schema),
            "type_schema": [t.name for t in self._types],
            "iterable": [[e[c] for c in self._schema] for e in self._entities],
        }

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> DataCollection:
        """The collection of a ``to_dict()`` form."""
        return DataCollection(data)

    def _rows(self, limit: int) -> list[list[Any]]:
        shown = self._entities if limit <= 0 else self._entities[:limit]
        return [[e[c] for c in self._schema] for e in shown]

    def show(self, limit: int = 5, tablefmt: str | None = None) -> None:
        """Show the first ``limit`` rows (all if negative): HTML in Jupyter, else a text grid."""
        fmt = tablefmt or ("html" if in_notebook() else "grid")
        if fmt == "html":
            table = html_table(self._schema, self._rows(limit))
            try:
                from IPython.display import HTML, display
            except ImportError:  # html asked for outside Jupyter: print the markup
                print(table)
            else:
                display(HTML(table))
        elif fmt == "grid":
            print(grid(self._schema, self._rows(limit)))
        else:
            raise ValueError(f"tablefmt must be 'grid' or 'html', not {tablefmt!r}")

    def _repr_html_(self) -> str:
        """Jupyter's rich display of the collection (its first five rows)."""
        return html_table(self._schema, self._rows(5))


def _list_rows(items: list[Any]) -> tuple[list[str], list[list[Any]]]:
    """Schema and rows of a list of entities, dicts or plain values."""
    if items and all(isinstance(i, Entity | Mapping) for i in items):
        first = items[0].__dict__ if isinstance(items[0], Entity) else items[0]
        schema = list(first)
        rows = [[(i[c]) for c in schema] for i in items]
        return schema, rows
    return ["value"], [[i] for i in items]
