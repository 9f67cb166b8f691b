"""The API side of structured filters: their OpenAPI text, and their errors as 422 answers.

The grammar itself lives in ``retrieval.filters`` (shared with the CLI's ``--filter``); here a
``FilterError`` becomes the API's 422 (``invalid_filter`` or ``unknown_filter_field``, naming
the field in ``details``), the same answer ``classify`` gives when one reaches a handler.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from retrieval import filters
from retrieval.api.errors import classify
from retrieval.errors import FilterError

FILTER_DESCRIPTION = (
    "Structured filter; all conditions must hold. Keys are stored columns (`id`, `caption`, "
    "`source`, `modality`) or metadata keys present in the collection (`metadata.<key>` "
    "addresses a metadata key that shadows a column). A condition is a value (equality), a "
    "list (membership), or an object of operators: `eq`, `ne`, `gt`, `gte`, `lt`, `lte` "
    "(numbers, or strings such as ISO dates compared as strings), `in`/`nin` (lists of 1-100 "
    "values of one type), `contains`/`prefix` (strings). Values are strings, numbers or "
    "booleans. Unknown keys or operators are a 422 naming them. Rows without a metadata key "
    "never match a condition on it (not even `ne`)."
)
# Valid on the demo collection (``mmrag demo``), as every example in the schema must be.
FILTER_EXAMPLE: dict[str, Any] = {"colour": "red", "shape": {"in": ["circle", "square"]}}


def requested_keys(spec: Mapping[str, Any]) -> list[str]:
    """``retrieval.filters.requested_keys``, failing with the API's 422."""
    try:
        return filters.requested_keys(spec)
    except FilterError as exc:
        raise classify(exc) from exc


def build_expression(spec: Mapping[str, Any] | None, metadata_keys: Collection[str]) -> str | None:
    """``retrieval.filters.build_expression``, failing with the API's 422."""
    try:
        return filters.build_expression(spec, metadata_keys)
    except FilterError as exc:
        raise classify(exc) from exc

