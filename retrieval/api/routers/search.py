"""POST /search (text-to-image) and POST /search/image (image-to-image, upload or URL)."""

from __future__ import annotations

import json
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from retrieval.api.deps import ServiceDep
from retrieval.api.errors import ApiError
from retrieval.api.images import decode_query_image, fetch_image
from retrieval.api.routers.common import hit_out, non_default, search_params
from retrieval.api.schemas import (
    ImageUrlSearchRequest,
    SearchOptions,
    SearchResponse,
    TextSearchRequest,
    error_responses,
)
from retrieval.api.service import Service
from retrieval.types import Hit

router = APIRouter(tags=["search"])
MAX_FORM_FIELD_BYTES = 64 * 1024
_FORM_FIELDS = ("k", "offset", "filter", "min_score", "diversity", "collection")


def _multipart_schema() -> dict[str, Any]:
    """OpenAPI schema of the upload form."""
    options = SearchOptions.model_json_schema()["properties"]
    props: dict[str, Any] = {
        "file": {"type": "string", "format": "binary", "description": "the query image"}
    }
    for name in _FORM_FIELDS:
        props[name] = dict(options[name])
    props["filter"] = {"type": "string", "description": "the filter object as JSON text"}
    return {"type": "object", "required": ["file"], "properties": props}


_IMAGE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {"schema": _multipart_schema()},
            "application/json": {"schema": ImageUrlSearchRequest.model_json_schema()},
        },
    }
}


def _response(
    request: Request,
    service: Service,
    options: SearchOptions,
    hits: list[Hit],
    started: float,
) -> SearchResponse:
    """The page of hits as the API returns it."""
    shown = non_default(service, options.collection)
    return SearchResponse(
        collection=options.collection or service.settings.collection,
        k=options.k,
        offset=options.offset,
        hits=[hit_out(request, hit, shown) for hit in hits],
        took_ms=round((time.perf_counter() - started) * 1000.0, 3),
    )


@router.post(
    "/search",
    response_model=SearchResponse,
    summary="Text-to-image search",
    responses=error_responses(401, 404, 409, 413, 422, 503),
)
async def search_text(
    body: TextSearchRequest, request: Request, service: ServiceDep
) -> SearchResponse:
    """Rank stored images by similarity to a text query (filters, paging, min_score, MMR)."""
    started = time.perf_counter()
    query = body.query.strip()
    limit = service.settings.max_query_chars
    if not query:
        raise ApiError(422, "query is empty (or only whitespace)", type="invalid_query")
    if len(query) > limit:
        raise ApiError(
            422, f"query is {len(query)} characters; at most {limit}", type="invalid_query"
        )
    params = await search_params(service, body)  # bad filters fail before the model runs
    vector = await service.embed_text(query)
    hits = await service.search(vector, body.collection, params)
    return _response(request, service, body, hits, started)


def _validate(model: type[SearchOptions], data: Any) -> Any:
    """Validate like a FastAPI body (a 422 in the API's error shape)."""
    try:
        if isinstance(data, bytes | str):
            return model.model_validate_json(data)
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [{**err, "loc": ("body", *err.get("loc", ()))} for err in exc.errors()]
        raise RequestValidationError(errors) from exc


async def _from_form(request: Request, service: Service) -> tuple[SearchOptions, bytes]:
    """Options and image bytes from a multipart upload (413 over the size cap)."""
    cap = service.settings.max_upload_bytes
    async with request.form(
        max_files=1, max_fields=len(_FORM_FIELDS), max_part_size=MAX_FORM_FIELD_BYTES
    ) as form:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise ApiError(422, "multipart upload needs a 'file' part with the image",
                           type="invalid_request")
        fields: dict[str, Any] = {}
        for name, value in form.multi_items():
            if name == "file":
                continue
            if not isinstance(value, str):
                raise ApiError(422, f"form field {name!r} must be text", type="invalid_request")
            fields[name] = value
        if "filter" in fields:
            try:
                fields["filter"] = json.loads(fields["filter"])
            except json.JSONDecodeError as exc:
                raise ApiError(422, f"form field 'filter' is not JSON: {exc.msg}",
                               type="invalid_filter") from exc
        options = _validate(SearchOptions, fields)
        data = await upload.read(cap + 1)
    if len(data) > cap:
        raise ApiError(413, f"the upload is over the cap of {cap} bytes")
    return options, data


@router.post(
    "/search/image",
    response_model=SearchResponse,
    summary="Image-to-image search (upload or URL)",
    responses=error_responses(400, 401, 404, 409, 413, 415, 422, 503),
    openapi_extra=_IMAGE_BODY,
)
async def search_image(request: Request, service: ServiceDep) -> SearchResponse:
    """Rank stored images by similarity to a query image.

    Send ``multipart/form-data`` with a ``file`` part (plus optional ``k``, ``offset``,
    ``filter`` as JSON text, ``min_score``, ``diversity``, ``collection`` fields), or JSON
    ``{"url": "https://...", ...}``: the server fetches http(s) URLs of public hosts only, with
    a timeout, an ``image/*`` content type and the upload size cap.
    """
    started = time.perf_counter()
    settings = service.settings
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    options: SearchOptions
    if media == "multipart/form-data":
        options, data = await _from_form(request, service)
        params = await search_params(service, options)
    elif media == "application/json" or media.endswith("+json"):
        body = _validate(ImageUrlSearchRequest, await request.body())
        options = body
        params = await search_params(service, options)  # bad filters fail before any fetch
        data = await fetch_image(
            body.url, max_bytes=settings.max_upload_bytes, allow_private=settings.allow_private_urls
        )
    else:
        raise ApiError(
            415,
            "send multipart/form-data with a 'file' part, or application/json with a 'url'",
            type="unsupported_media_type",
        )
    min_side = (await service.embedder()).decode_min_side
    rgb = await service.run_io(decode_query_image, data, settings.max_image_pixels, min_side)
    vector = await service.embed_image(rgb)
    hits = await service.search(vector, options.collection, params)
    return _response(request, service, options, hits, started)
