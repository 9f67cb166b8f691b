"""The web UI: the page at ``/``, its files at ``/static/...``, and the field list it needs.

* ``GET /`` and ``GET /static/{name}``: the files shipped in ``retrieval/api/static`` (plain ES
  modules and CSS, no build step, nothing from a CDN). Only files present at import time are
  served (a fixed table, so no path ever reaches the file system). These are the only routes
  the API key middleware lets through without a key: the page then asks for the key.
* ``GET /fields``: the filterable fields of a collection (stored columns and sampled metadata
  keys, with their value types and, when few, their values) for the page's filter control,
  from the same sample the search filter checks (``FieldCatalogue``). The page's "more like
  this" is ``POST /search/similar``, with the other search routes.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, Field

from retrieval.api.deps import ServiceDep
from retrieval.api.errors import ApiError
from retrieval.api.schemas import COLLECTION_PATTERN, error_responses
from retrieval.fields import MAX_FIELD_VALUES, FieldInfo

router = APIRouter(tags=["ui"])

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

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


@router.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
async def index() -> Response:
    """The web UI (needs no API key itself; it asks for one when the server wants it)."""
    return _file("index.html")


@router.api_route("/static/{name:path}", methods=["GET", "HEAD"], include_in_schema=False)
async def static_file(name: str) -> Response:
    """One of the page's shipped files."""
    return _file(name)


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


@router.get(
    "/fields",
    response_model=FieldsResponse,
    summary="Filterable fields of a collection",
    responses=error_responses(404, 422, 503),
)
async def fields(
    service: ServiceDep,
    collection: Annotated[str | None, Query(pattern=COLLECTION_PATTERN)] = None,
) -> FieldsResponse:
    """The columns and the metadata keys seen in up to 2000 rows (sampled at most 1.5 s ago).

    Each field lists the value types seen and, when there are at most 30 distinct short
    values, the values themselves (a client can offer them as choices).
    """
    name = collection or service.settings.collection
    sample = await service.fields.fields(name)
    return FieldsResponse(
        collection=name, sampled=sample.rows, fields=[_field_out(f) for f in sample.fields]
    )


def _field_out(info: FieldInfo) -> FieldOut:
    return FieldOut(name=info.name, kind=info.kind, types=list(info.types),
                    values=None if info.values is None else list(info.values), count=info.count)
