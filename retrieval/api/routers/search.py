"""POST /search (text-to-image), POST /search/image (image-to-image, upload or URL) and
POST /search/similar (more like a stored item)."""

from __future__ import annotations

import re
import time
from dataclasses import replace
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from pydantic import Field, ValidationError
from starlette.datastructures import UploadFile

from retrieval.api.deps import ServiceDep
from retrieval.api.errors import ApiError
from retrieval.api.images import decode_query_image, fetch_image
from retrieval.api.json_input import DepthLimitedRoute, loads_client_json
from retrieval.api.pixel_budget import decode_cost
from retrieval.api.routers.common import hit_out, non_default, search_params
from retrieval.api.schemas import (
    ITEM_ID_PATTERN,
    ImageUrlSearchRequest,
    SearchOptions,
    SearchResponse,
    TextSearchRequest,
    error_responses,
)
from retrieval.api.service import Service
from retrieval.search import image_mode
from retrieval.stores.expr import identifier, literal
from retrieval.types import Hit

router = APIRouter(route_class=DepthLimitedRoute)  # tags per route: /search/similar: UI's
MAX_FORM_FIELD_BYTES = 64 * 1024
_FORM_FIELDS = (
    "k", "offset", "filter", "min_score", "diversity", "collection", "mode", "modality",
)
_INT_FIELDS = frozenset({"k", "offset"})
_NUMBER_FIELDS = frozenset({"min_score", "diversity"})
_INTEGER = re.compile(r"[+-]?[0-9]{1,18}")
_NUMBER = re.compile(
    r"[+-]?(?:[0-9]{1,18}(?:\.[0-9]{0,18})?|\.[0-9]{1,18})(?:e[+-]?[0-9]{1,3})?", re.I
)


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
    mode: str = "vector",
) -> SearchResponse:
    """The page of hits as the API returns it."""
    shown = non_default(service, options.collection)
    return SearchResponse(
        collection=options.collection or service.settings.collection,
        k=options.k,
        offset=options.offset,
        mode=mode,
        hits=[hit_out(request, hit, shown) for hit in hits],
        took_ms=round((time.perf_counter() - started) * 1000.0, 3),
    )


@router.post(
    "/search",
    tags=["search"],
    response_model=SearchResponse,
    summary="Text search: vector, keyword (BM25) or hybrid",
    responses=error_responses(400, 404, 409, 422, 503),
)
async def search_text(
    body: TextSearchRequest, request: Request, service: ServiceDep
) -> SearchResponse:
    """Rank stored items for a text query (modes, filters, paging, min_score, MMR).

    ``mode``: vector (CLIP similarity), keyword (BM25 over captions, file names and indexed
    text columns) or hybrid (both, fused by Milvus with RRF, or ``ranker=weighted`` with
    ``hybrid_weights``); unset, hybrid where the collection has the text index, else vector.
    A collection without the text index answers keyword and hybrid with a 422 naming the
    command that adds it.
    """
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
    params = await service.searches.resolve(body.collection, params, text=True)
    mode = params.mode or "vector"
    if mode == "keyword":
        hits = await service.searches.keyword(query, body.collection, params)
    else:
        vector = await service.models.embed_text(query)
        hits = await service.searches.search(vector, body.collection, params, text=query)
    return _response(request, service, body, hits, started, mode)


def _validate(model: type[SearchOptions], data: Any) -> Any:
    """Validate like a FastAPI body (a 422 in the API's error shape)."""
    try:
        if isinstance(data, bytes | str):
            return model.model_validate_json(data)
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [{**err, "loc": ("body", *err.get("loc", ()))} for err in exc.errors()]
        raise RequestValidationError(errors) from exc


def _form_value(name: str, text: str) -> Any:
    """A form field's text as its declared type (the models are strict; text that is not of
    the type stays text, so validation names the field)."""
    if name == "filter":
        return loads_client_json(text, "form field 'filter'", error_type="invalid_filter")
    stripped = text.strip()
    if name in _INT_FIELDS and _INTEGER.fullmatch(stripped):
        return int(stripped)
    if name in _NUMBER_FIELDS and _NUMBER.fullmatch(stripped):
        return float(stripped)
    return text


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
        options = _validate(SearchOptions, {k: _form_value(k, v) for k, v in fields.items()})
        data = await upload.read(cap + 1)
    if len(data) > cap:
        raise ApiError(413, f"the upload is over the cap of {cap} bytes")
    return options, data


@router.post(
    "/search/image",
    tags=["search"],
    response_model=SearchResponse,
    summary="Image-to-image search (upload or URL)",
    responses=error_responses(400, 404, 409, 415, 422, 503),
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
        params = image_mode(await search_params(service, options))
    elif media == "application/json" or media.endswith("+json"):
        body = _validate(ImageUrlSearchRequest, await request.body())
        options = body
        params = image_mode(await search_params(service, options))  # bad ones fail before a fetch
        data = await fetch_image(
            body.url, max_bytes=settings.max_upload_bytes, allow_private=settings.allow_private_urls
        )
    else:
        raise ApiError(
            415,
            "send multipart/form-data with a 'file' part, or application/json with a 'url'",
            type="unsupported_media_type",
        )
    min_side = (await service.models.embedder()).decode_min_side
    cost = await service.run_io(decode_cost, data, min_side)
    async with await service.pixels.hold(cost) as lease:  # waits, or 503 with Retry-After
        rgb = await service.run_io(decode_query_image, data, settings.max_image_pixels, min_side)
        lease.shrink(rgb.nbytes)  # only the decoded array is in flight now
        vector = await service.models.embed_image(rgb)
        del rgb
    hits = await service.searches.search(vector, options.collection, params)
    return _response(request, service, options, hits, started)


class SimilarSearchRequest(SearchOptions):
    """Image-to-image search from a stored item: its stored vector is the query."""

    id: str = Field(
        ..., pattern=ITEM_ID_PATTERN, description="the stored item to find neighbours of",
    )  # no example: ids are the collection's own
    include_self: bool = Field(
        False, description="keep the item itself in the hits (it usually ranks first)"
    )


@router.post(
    "/search/similar",
    tags=["ui"],
    response_model=SearchResponse,
    summary="More like this: search with a stored item's vector",
    responses=error_responses(400, 404, 409, 422, 503),
)
async def search_similar(
    body: SimilarSearchRequest, request: Request, service: ServiceDep
) -> SearchResponse:
    """Rank stored items by similarity to a stored item (same options as ``POST /search``).

    The item itself is left out (by a filter clause ``id != <id>``, so pages stay consistent)
    unless ``include_self`` is true.
    """
    started = time.perf_counter()
    records = await service.stores.call(
        body.collection, lambda store: store.get([body.id], with_vectors=True)
    )
    if not records:
        name = body.collection or service.settings.collection
        raise ApiError(404, f"no item {body.id!r} in collection {name!r}", type="item_not_found")
    vector = np.asarray(records[0].vector, dtype=np.float32)
    if vector.size == 0:
        raise ApiError(409, f"item {body.id!r} has no stored vector", type="conflict")
    params = image_mode(await search_params(service, body))
    if not body.include_self:  # a filter clause, so that pages stay consistent
        itself = f"{identifier('id')} != {literal(body.id)}"
        params = replace(params, expr=f"({params.expr}) and ({itself})" if params.expr else itself)
    query = await service.models.as_query(vector)
    hits = await service.searches.search(query, body.collection, params)
    return _response(request, service, body, hits, started)
