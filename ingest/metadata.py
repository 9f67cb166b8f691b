"""Manifest cells -> filterable JSON metadata: typed values, safe keys, checked ids.

Mapping (also in README "Ingest"):

* ``id`` -> the primary key, after :func:`check_id`; ``caption`` -> the ``caption`` field;
  ``path``/``url`` -> ``source``; every other column -> a key of the JSON ``metadata`` field.
* Keys become ``[A-Za-z_][A-Za-z0-9_]*`` (at most 64 characters): every other character turns
  into ``_``, a leading digit gets a ``_`` prefix, an empty name becomes ``column_<n>``, and a
  name that clashes with an earlier column gets ``_2``, ``_3``, ... appended.
* Values: ints, floats and bools stay numbers/booleans; strings stay strings; missing values
  (empty cells, NaN, None, NaT) are dropped; non-finite floats are dropped; dates and datetimes
  become ISO-8601 strings (timezone-aware ones converted to UTC), so a string comparison is a date
  range; lists and dicts (Parquet/JSONL) are converted element by element; anything else is
  stored as ``str(value)``. Text that is not valid Unicode (a lone surrogate from a JSON
  ``\\ud800`` escape) gets U+FFFD in its place, as undecodable bytes do.
* A value nested deeper than ``MAX_METADATA_DEPTH`` lists/objects rejects its row (checked
  without recursion, so no depth can crash the job).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

RESERVED_COLUMNS = ("id", "path", "url", "caption")
MAX_KEY_CHARS = 64
MAX_METADATA_DEPTH = 32  # nested lists/objects in one metadata value
_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}\Z")
_BAD_KEY_CHARS = re.compile(r"[^A-Za-z0-9_]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_DROP = object()


class InvalidIdError(ValueError):
    """A manifest id that cannot be a primary key."""


def check_id(value: Any) -> str:
    """The manifest id as a string, or InvalidIdError (allowed: ``[A-Za-z0-9._:-]{1,128}``)."""
    text = cell_text(value)
    if not _ID.match(text):
        shown = text if len(text) <= 40 else text[:40] + "..."
        raise InvalidIdError(
            f"invalid id {shown!r}: ids are 1-128 characters of letters, digits, '.', '_', ':', '-'"
        )
    return text


def sanitize_keys(columns: Iterable[Any]) -> dict[str, str]:
    """Map each column name to a unique metadata key (see the module docstring)."""
    mapping: dict[str, str] = {}
    used: set[str] = set()
    for index, column in enumerate(columns):
        name = str(column)
        key = _BAD_KEY_CHARS.sub("_", name.strip())[:MAX_KEY_CHARS] or f"column_{index}"
        if key[0].isdigit():
            key = ("_" + key)[:MAX_KEY_CHARS]
        base, n = key, 2
        while key in used:
            suffix = f"_{n}"
            key = base[: MAX_KEY_CHARS - len(suffix)] + suffix
            n += 1
        used.add(key)
        mapping[name] = key
    return mapping


def row_metadata(row: Mapping[str, Any], keys: Mapping[str, str]) -> dict[str, Any]:
    """The JSON metadata of one manifest row: sanitized keys, typed values, missing dropped."""
    out: dict[str, Any] = {}
    for column, key in keys.items():
        value = json_value(row.get(column))
        if value is not _DROP:
            out[key] = value
    return out


def cell_text(value: Any) -> str:
    """A cell as text ('' when missing); integral floats lose their '.0'."""
    value = json_value(value)
    if value is _DROP:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def json_value(value: Any) -> Any:
    """A JSON-ready value, or the private _DROP marker for missing / unrepresentable ones."""
    if value is None or value is pd.NaT or value is pd.NA:
        return _DROP
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        number = float(value)
        return number if math.isfinite(number) else _DROP
    if isinstance(value, str):
        return valid_text(value)
    if isinstance(value, dt.datetime):  # includes pd.Timestamp
        if value.tzinfo is not None:
            value = value.astimezone(dt.timezone.utc)
        return value.isoformat()
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, np.datetime64):
        return _DROP if np.isnat(value) else json_value(pd.Timestamp(value))
    if isinstance(value, pd.Timedelta | dt.timedelta):
        return value.total_seconds()
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return _DROP
    if isinstance(value, Mapping):
        items = {str(k): json_value(v) for k, v in value.items()}
        return {k: v for k, v in items.items() if v is not _DROP}
    if isinstance(value, list | tuple | np.ndarray):
        return [v for v in (json_value(x) for x in value) if v is not _DROP]
    return str(value)


def valid_text(text: str) -> str:
    """The text, with U+FFFD for each lone surrogate (UTF-8 cannot hold one)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text


def nesting_depth(value: Any, limit: int) -> int:
    """How deeply lists/objects nest in a value (0 for a scalar), counted up to ``limit + 1``."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        current, depth = stack.pop()
        if isinstance(current, np.ndarray) and current.dtype != object:
            deepest = max(deepest, depth + current.ndim)
            continue
        if isinstance(current, Mapping):
            children: Iterable[Any] = current.values()
        elif isinstance(current, list | tuple | np.ndarray):
            children = current
        else:
            continue
        deepest = max(deepest, depth + 1)
        if deepest > limit:
            return deepest
        stack.extend((child, depth + 1) for child in children)
    return deepest


def is_missing(value: Any) -> bool:
    """Whether a cell is empty (None, NaN, NA, NaT, or blank text)."""
    converted = json_value(value)
    return converted is _DROP or (isinstance(converted, str) and not converted.strip())
