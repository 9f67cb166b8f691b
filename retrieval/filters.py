"""Structured search filters -> safe Milvus boolean expressions (no client text is pasted).

Shared by the API (a ``FilterError`` becomes its 422) and the CLI (``--filter``).

Grammar (also in the OpenAPI schema, see ``FILTER_DESCRIPTION``)::

    filter    := { field: condition, ... }          all conditions must hold (AND)
    field     := id | caption | source | modality   stored columns (string values)
               | <metadata key>                     a key seen in the collection's metadata
               | metadata.<key>                     a metadata key even if it shadows a column
    condition := value                              field == value
               | [value, ...]                       field in [...]
               | { op: operand, ... }               every op must hold
    op        := eq | ne | gt | gte | lt | lte      comparisons (numbers, or strings such as
                                                    ISO dates, compared as strings)
               | in | nin                           a list of 1 to 100 values of one type
               | contains | prefix                  substring / prefix match on strings
    value     := string | number | boolean

Every value becomes a literal through ``retrieval.stores.expr`` (quoted and escaped); field
names must be identifiers and known, otherwise a ``FilterError`` names the field.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from retrieval.errors import FilterError
from retrieval.stores.expr import UnsafeLiteralError, field_ref, identifier, literal

COLUMNS = ("id", "caption", "source", "modality")
METADATA_PREFIX = "metadata."
MAX_FIELDS = 16
MAX_LIST = 100
MAX_STRING = 1024
MAX_EXPRESSION = 64 * 1024
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}\Z")
_COMPARE = {"eq": "==", "ne": "!=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
OPERATORS = (*_COMPARE, "in", "nin", "contains", "prefix")

MODALITIES = ("image", "text")  # what a row was embedded from (images, text passages)


def with_modality(expr: str | None, modality: str | None) -> str | None:
    """``expr`` restricted to rows of one modality (``image`` or ``text``); None keeps both."""
    if modality is None:
        return expr
    if modality not in MODALITIES:
        raise FilterError(
            f"modality must be one of {', '.join(MODALITIES)}, got {str(modality)[:40]!r}",
            field="modality",
        )
    clause = f"{identifier('modality')} == {literal(modality)}"
    return f"({expr}) and ({clause})" if expr else clause


def _fail(field: str, message: str) -> FilterError:
    return FilterError(f"filter field {field!r}: {message}", field=field)


def requested_keys(spec: Mapping[str, Any]) -> list[str]:
    """The metadata keys a filter names (field names are checked to be identifiers)."""
    if not isinstance(spec, Mapping):
        raise FilterError("filter must be a JSON object of field: condition")
    if len(spec) > MAX_FIELDS:
        raise FilterError(f"filter has {len(spec)} fields; at most {MAX_FIELDS}")
    keys = []
    for field in spec:
        if not isinstance(field, str):
            raise FilterError("filter field names must be strings")
        column, key = _split(field)
        if column is None:
            keys.append(key)
    return keys


def _split(field: str) -> tuple[str | None, str]:
    """(column, "") for a stored column, (None, key) for a metadata key (checked)."""
    prefixed = field.startswith(METADATA_PREFIX)
    key = field[len(METADATA_PREFIX):] if prefixed else field
    if not _KEY.match(key):
        raise FilterError(
            f"filter field {field[:80]!r} is not a valid name (letters, digits and '_', "
            "starting with a letter or '_', at most 64)",
            field=field[:80],
        )
    if not prefixed and field in COLUMNS:
        return field, ""
    return None, key


def build_expression(spec: Mapping[str, Any] | None, metadata_keys: Collection[str]) -> str | None:
    """The Milvus expression for a structured filter, or None when it is empty."""
    if not spec:
        return None
    requested_keys(spec)
    clauses: list[str] = []
    for field, condition in spec.items():
        column, key = _split(field)
        if column is None and key not in metadata_keys:
            known = ", ".join(sorted({*COLUMNS, *metadata_keys})[:50])
            raise FilterError(
                f"unknown filter field {field!r}: no stored item has it (known: {known})",
                field=field,
                kind="unknown_filter_field",
            )
        ref = identifier(column) if column is not None else field_ref("metadata", key)
        try:
            clauses.extend(_clauses(field, ref, condition, strings_only=column is not None))
        except UnsafeLiteralError as exc:
            raise _fail(field, str(exc)) from exc
    expression = " and ".join(f"({c})" for c in clauses)
    if len(expression) > MAX_EXPRESSION:
        raise FilterError(f"filter is too large (over {MAX_EXPRESSION} characters)")
    return expression


def _clauses(field: str, ref: str, condition: Any, *, strings_only: bool) -> list[str]:
    """Expression clauses for one field's condition."""
    if isinstance(condition, Mapping):
        if not condition:
            raise _fail(field, "an operator object needs at least one operator")
        out = []
        for op, operand in condition.items():
            out.append(_operator(field, ref, str(op), operand, strings_only))
        return out
    if isinstance(condition, list):
        return [_membership(field, ref, "in", condition, strings_only)]
    return [f"{ref} == {_value(field, condition, strings_only)}"]


def _operator(field: str, ref: str, op: str, operand: Any, strings_only: bool) -> str:
    """One operator clause."""
    if op in _COMPARE:
        value = _value(field, operand, strings_only)
        if op not in ("eq", "ne") and isinstance(operand, bool):
            raise _fail(field, f"'{op}' compares numbers or strings, not booleans")
        return f"{ref} {_COMPARE[op]} {value}"
    if op in ("in", "nin"):
        return _membership(field, ref, op, operand, strings_only)
    if op in ("contains", "prefix"):
        if not isinstance(operand, str) or not operand:
            raise _fail(field, f"'{op}' takes a non-empty string")
        _check_string(field, operand)
        escaped = operand.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = f"%{escaped}%" if op == "contains" else f"{escaped}%"
        return f"{ref} like {literal(pattern)}"
    raise _fail(field, f"unknown operator {op[:40]!r} (use {', '.join(OPERATORS)})")


def _membership(field: str, ref: str, op: str, values: Any, strings_only: bool) -> str:
    """``ref in [...]`` / ``ref not in [...]`` with one value type."""
    if not isinstance(values, list) or not 1 <= len(values) <= MAX_LIST:
        raise _fail(field, f"'{op}' takes a list of 1 to {MAX_LIST} values")
    kinds = {_kind(field, v, strings_only) for v in values}
    if len(kinds) > 1:
        raise _fail(field, f"'{op}' values must all be strings, all numbers or all booleans")
    items: Sequence[Any] = values
    if kinds == {"number"} and any(isinstance(v, float) for v in values):
        items = [float(v) for v in values]  # Milvus refuses lists mixing ints and floats
    rendered = ", ".join(literal(v) for v in items)
    return f"{ref} {'in' if op == 'in' else 'not in'} [{rendered}]"


def _kind(field: str, value: Any, strings_only: bool) -> str:
    """'string', 'number' or 'boolean' for a valid value; FilterError otherwise."""
    _value(field, value, strings_only)
    if isinstance(value, bool):
        return "boolean"
    return "string" if isinstance(value, str) else "number"


def _value(field: str, value: Any, strings_only: bool) -> str:
    """A checked literal for one value."""
    if strings_only and not isinstance(value, str):
        raise _fail(field, "this column holds strings; give a string value")
    if isinstance(value, str):
        _check_string(field, value)
    elif isinstance(value, float) and not math.isfinite(value):
        raise _fail(field, "numbers must be finite")
    elif not isinstance(value, bool | int | float):
        raise _fail(field, "values must be strings, numbers or booleans")
    return literal(value)


def _check_string(field: str, value: str) -> None:
    if len(value) > MAX_STRING:
        raise _fail(field, f"string values are at most {MAX_STRING} characters")
