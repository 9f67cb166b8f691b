"""The pipeline engine's exceptions: one base class, schema, operator and lookup errors."""

from __future__ import annotations

import difflib
import reprlib
from typing import Any

_REPR = reprlib.Repr()
_REPR.maxstring = 80
_REPR.maxother = 80
_REPR.maxlist = 8
_REPR.maxtuple = 8
_REPR.maxdict = 8
_REPR.maxlevel = 3
MAX_ROW_REPR = 300


def short_repr(value: Any, limit: int = MAX_ROW_REPR) -> str:
    """A bounded repr for error messages: reprlib-abbreviated, then cut to ``limit`` chars."""
    try:
        text = _REPR.repr(value)
    except Exception as exc:  # noqa: BLE001 - a broken __repr__ must not hide the real error
        text = f"<unrepresentable {type(value).__name__}: {exc!r}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


class PipelineError(Exception):
    """Base class of every error the pipeline engine raises."""


class SchemaError(PipelineError, ValueError):
    """A pipeline definition that cannot run: bad column names, undeclared columns, bad sizes."""


class UnknownOperatorError(PipelineError, LookupError):
    """``ops.<namespace>.<name>`` names no registered operator."""

    def __init__(self, name: str, known: list[str], instead: str | None = None) -> None:
        if instead is not None:
            message = (
                f"{name!r} is a towhee hub operator that mmrag does not implement (mmrag never "
                f"downloads operators); use {instead} instead."
            )
        else:
            close = closest_operators(name, known)
            hint = f"the closest are {', '.join(close)}" if close else "none is close"
            message = (
                f"unknown operator {name!r}; {hint}. Register yours with "
                f"@register(name='namespace/name'); pipelines.list_operators() lists them all."
            )
        super().__init__(message)
        self.name = name
        self.known = known
        self.instead = instead


def closest_operators(name: str, known: list[str], limit: int = 5) -> list[str]:
    """Registered names most like ``name``: its namespace's first, then similar spellings."""
    namespace = name.partition("/")[0] if "/" in name else None
    same = [k for k in known if namespace and k.startswith(namespace + "/")]
    similar = difflib.get_close_matches(name, known, n=limit, cutoff=0.5)
    bare = [k for k in known if k.partition("/")[2] == name]
    ordered = dict.fromkeys([*same, *bare, *similar])
    return list(ordered)[:limit]


class OperatorError(PipelineError):
    """An operator raised while processing a row (or batch); the original is ``__cause__``."""

    def __init__(self, op_name: str, node: str, row: Any, original: BaseException) -> None:
        detail = f"{type(original).__name__}: {original}"
        if len(detail) > 500:
            detail = detail[:497] + "..."
        super().__init__(f"operator {op_name!r} ({node}) failed on {short_repr(row)}: {detail}")
        self.op_name = op_name
        self.node = node
        self.row = row
        self.original = original
        self.__cause__ = original


class Cancelled(Exception):
    """Internal: raised inside pipeline threads to unwind them once a run is cancelled."""
