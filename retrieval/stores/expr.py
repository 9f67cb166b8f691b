"""Injection-proof building blocks for Milvus boolean filter expressions.

Neither Milvus Lite 2.5 nor the Milvus 2.3 server accepts ``filter_params`` templates, so
every value that reaches an expression goes through ``literal``/``quote_string`` here.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable

from retrieval.errors import ConfigError

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

Scalar = str | int | float | bool


class UnsafeLiteralError(ConfigError, ValueError):
    """A value that cannot be written as a safe Milvus literal."""


def quote_string(value: str) -> str:
    """Return ``value`` as a double-quoted Milvus string literal (backslash and quote escaped)."""
    if not isinstance(value, str):
        raise UnsafeLiteralError(f"expected a string, got {type(value).__name__}")
    for ch in value:
        category = unicodedata.category(ch)
        if category == "Cc":
            raise UnsafeLiteralError(f"control character U+{ord(ch):04X} is not allowed")
        if category == "Cs":
            raise UnsafeLiteralError(f"lone surrogate U+{ord(ch):04X} is not allowed")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def literal(value: Scalar) -> str:
    """Return a Milvus literal for a str, int, float or bool (finite numbers only)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise UnsafeLiteralError(f"integer {value} is outside the int64 range")
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise UnsafeLiteralError(f"{value!r} is not a finite number")
        return repr(value)
    if isinstance(value, str):
        return quote_string(value)
    raise UnsafeLiteralError(f"unsupported literal type {type(value).__name__}")


def identifier(name: str) -> str:
    """Return ``name`` if it is a plain field name (letters, digits, underscore), else refuse."""
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise UnsafeLiteralError(f"{name!r} is not a valid field name")
    return name


def field_ref(field: str, *keys: str | int) -> str:
    """Return a field reference, with JSON keys quoted: ``metadata["label"]``."""
    parts = [identifier(field)]
    for key in keys:
        if isinstance(key, bool) or not isinstance(key, str | int):
            raise UnsafeLiteralError(f"JSON key must be a string or an index, got {key!r}")
        if isinstance(key, int) and key < 0:
            raise UnsafeLiteralError(f"JSON index must not be negative, got {key}")
        parts.append(f"[{literal(key)}]")
    return "".join(parts)


def in_expr(field: str, values: Iterable[Scalar]) -> str:
    """Return ``field in [v1, v2, ...]`` with every value quoted; refuses an empty list."""
    items = [literal(v) for v in values]
    if not items:
        raise UnsafeLiteralError("an 'in' filter needs at least one value")
    return f"{identifier(field)} in [{', '.join(items)}]"


def ids_in_expr(ids: Iterable[str], field: str = "id") -> str:
    """Return ``id in ["a", "b", ...]`` for string ids, each safely quoted."""
    values = list(ids)
    for value in values:
        if not isinstance(value, str):
            raise UnsafeLiteralError(f"ids must be strings, got {type(value).__name__}")
    return in_expr(field, values)
