"""The web UI: the page at ``/``, its files at ``/static/...``, and two routes it needs.

* ``GET /`` and ``GET /static/{name}``: the files shipped in ``retrieval/api/static`` (plain ES
  modules and CSS, no build step, nothing from a CDN). Only files present at import time are
  served (a fixed table, so no path ever reaches the file system). These are the only routes
  the API key middleware lets through without a key: the page then asks for the key.
* ``POST /search/similar``: image-to-image search from a stored item ("more like this"), with
  the item's stored vector as the query.
* ``GET /fields``: the filterable fields of a collection (stored columns and sampled metadata
  keys, with their value types and, when few, their values) for the page's filter control.
"""

from __future__ import annotations

import math
import mimetypes
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, Field

from retrieval.api.deps import ServiceDep
from retrieval.api.errors import ApiError
from retrieval.api.filters import COLUMNS
from retrieval.api.routers.common import hit_out, non_default, search_params
from retrieval.api.schemas import (
    COLLECTION_PATTERN,
    ITEM_ID_PATTERN,
    SearchOptions,
    SearchResponse,
    error_responses,
)
from retrieval.api.service import KEYS_SAMPLE_ROWS, Service
from retrieval.stores.base import VectorStore
from retrieval.stores.expr import identifier, literal

router = APIRouter(tags=["ui"])

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
FIELDS_TTL_S = 60.0
MAX_FIELD_VALUES = 30
MAX_VALUE_CHARS = 80

# The page loads only its own files; data is shown as text, images come from this origin
# (blob: for thumbnails fetched with the API key and for the preview of an uploaded image).
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
    "connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'; object-src 'none'"
)
STATIC_HEADERS = {
    "Content-Security-Policy": PAGE_CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",  # revalidate (ETag) so an upgrade is picked up at once
}
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".json": "application/json",
}


def _static_files(root: Path) -> dict[str, Path]:
    """Every shipped file under root, by its '/'-separated relative name."""
    if not root.is_dir():
        return {}
    return {
        path.relative_to(root).as_posix(): path
        for path in sorted(root.rglob("*"))
        if path.is_file() and not path.name.startswith(".")
    }


STATIC_FILES = _static_files(STATIC_DIR)


def _file(name: str) -> Response:
    path = STATIC_FILES.get(name)
    if path is None:
        raise ApiError(404, f"no static file {name[:100]!r}", type="not_found")
    media = _TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0]
    return FileResponse(
        path, media_type=media or "application/octet-stream", headers=STATIC_HEADERS
    )


@router.get("/", include_in_schema=False)
async def index() -> Response:
    """The web UI (needs no API key itself; it asks for one when the server wants it)."""
    return _file("index.html")


@router.get("/static/{name:path}", include_in_schema=False)
async def static_file(name: str) -> Response:
    """One of the page's shipped files."""
    return _file(name)


# ----- more like this -------------------------------------------------------------------------


class SimilarSearchRequest(SearchOptions):
    """Image-to-image search from a stored item: its stored vector is the query."""

    id: str = Field(
        ..., pattern=ITEM_ID_PATTERN, description="the stored item to find neighbours of",
        examples=["3f2a9c"],
    )
    include_self: bool = Field(
        False, description="keep the item itself in the hits (it usually ranks first)"
    )


@router.post(
    "/search/similar",
    response_model=SearchResponse,
    summary="More like this: search with a stored item's vector",
    responses=error_responses(401, 404, 409, 422, 503),
)
async def search_similar(
    body: SimilarSearchRequest, request: Request, service: ServiceDep
) -> SearchResponse:
    """Rank stored items by similarity to a stored item (same options as ``POST /search``).

    The item itself is left out (by a filter clause ``id != <id>``, so pages stay consistent)
    unless ``include_self`` is true.
    """
    started = time.perf_counter()
    records = await service.call_store(
        body.collection, lambda store: store.get([body.id], with_vectors=True)
    )
    if not records:
        name = body.collection or service.settings.collection
        raise ApiError(404, f"no item {body.id!r} in collection {name!r}", type="item_not_found")
    vector = np.asarray(records[0].vector, dtype=np.float32)
    if vector.size == 0:
        raise ApiError(409, f"item {body.id!r} has no stored vector", type="conflict")
    params = await search_params(service, body)
    if not body.include_self:  # a filter clause, so that pages stay consistent
        itself = f"{identifier('id')} != {literal(body.id)}"
        params = replace(params, expr=f"({params.expr}) and ({itself})" if params.expr else itself)
    hits = await service.search(vector, body.collection, params)
    shown = non_default(service, body.collection)
    return SearchResponse(
        collection=body.collection or service.settings.collection,
        k=body.k,
        offset=body.offset,
        hits=[hit_out(request, hit, shown) for hit in hits],
        took_ms=round((time.perf_counter() - started) * 1000.0, 3),
    )


# ----- filterable fields ----------------------------------------------------------------------


class FieldOut(BaseModel):
    """A field the search filter accepts."""

    name: str = Field(description="the filter key (`metadata.<key>` when it shadows a column)")
    kind: str = Field(description="column (stored string column) or metadata")
    types: list[str] = Field(description="value types seen: string, number, boolean, other")
    values: list[Any] | None = Field(
        None, description=f"every value seen, when at most {MAX_FIELD_VALUES} (else null)"
    )
    count: int = Field(description="sampled rows that have the field")


class FieldsResponse(BaseModel):
    """What the filter control can offer for a collection."""

    collection: str
    sampled: int = Field(description="rows sampled (at most the server's sample size)")
    fields: list[FieldOut]


@dataclass
class _FieldStats:
    types: set[str] = field(default_factory=set)
    values: set[Any] = field(default_factory=set)
    too_many: bool = False
    count: int = 0

    def add(self, value: Any) -> None:
        self.count += 1
        kind = _kind(value)
        self.types.add(kind)
        if kind == "other" or (isinstance(value, str) and len(value) > MAX_VALUE_CHARS):
            self.too_many = True
        elif not self.too_many:
            self.values.add(value)
            self.too_many = len(self.values) > MAX_FIELD_VALUES


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number" if math.isfinite(value) else "other"
    return "string" if isinstance(value, str) else "other"


def sample_fields(store: VectorStore, rows: int = KEYS_SAMPLE_ROWS) -> tuple[int, list[FieldOut]]:
    """(rows sampled, fields) from up to ``rows`` stored records (blocking)."""
    stats: dict[str, _FieldStats] = {}
    modality = _FieldStats()
    seen = 0
    for batch in store.iterate(batch_size=min(500, rows), with_vectors=False):
        for record in batch:
            modality.add(getattr(record.modality, "value", str(record.modality)))
            for key, value in record.metadata.items():
                if isinstance(key, str):
                    stats.setdefault(key, _FieldStats()).add(value)
        seen += len(batch)
        if seen >= rows:
            break
    fields = [
        FieldOut(name=name, kind="column", types=["string"], count=seen,
                 values=sorted(modality.values) if name == "modality" and seen else None)
        for name in COLUMNS
    ]
    for key in sorted(stats):
        entry = stats[key]
        values = None if entry.too_many else sorted(entry.values, key=_order)
        name = f"metadata.{key}" if key in COLUMNS else key
        fields.append(FieldOut(name=name, kind="metadata", types=sorted(entry.types),
                               values=values, count=entry.count))
    return seen, fields


def _order(value: Any) -> tuple[int, Any]:
    """Sort mixed values: booleans, numbers, then strings."""
    if isinstance(value, bool):
        return (0, value)
    return (1, value) if isinstance(value, int | float) else (2, str(value))


async def _fields(request: Request, service: Service, name: str) -> tuple[int, list[FieldOut]]:
    """Sampled fields of a collection, cached for FIELDS_TTL_S per app."""
    cache: dict[str, tuple[float, tuple[int, list[FieldOut]]]] = getattr(
        request.app.state, "ui_fields", None
    ) or {}
    request.app.state.ui_fields = cache
    entry = cache.get(name)
    if entry is not None and time.monotonic() - entry[0] < FIELDS_TTL_S:
        return entry[1]
    result = await service.call_store(name, sample_fields)
    cache[name] = (time.monotonic(), result)
    return result


@router.get(
    "/fields",
    response_model=FieldsResponse,
    summary="Filterable fields of a collection",
    responses=error_responses(401, 404, 422, 503),
)
async def fields(
    request: Request,
    service: ServiceDep,
    collection: Annotated[str | None, Query(pattern=COLLECTION_PATTERN)] = None,
) -> FieldsResponse:
    """The columns and the metadata keys seen in up to 2000 rows (cached for a minute).

    Each field lists the value types seen and, when there are at most 30 distinct short
    values, the values themselves (a client can offer them as choices).
    """
    name = collection or service.settings.collection
    sampled, found = await _fields(request, service, name)
    return FieldsResponse(collection=name, sampled=sampled, fields=found)
