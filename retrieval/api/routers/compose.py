"""POST /search/composed: a weighted sum of text, stored-item and uploaded-image terms.

JSON ``{"terms": [{"text": "beach"}, {"image_id": "ab12", "weight": -0.5}], "k": 10, ...}``,
or ``multipart/form-data`` with a ``request`` part holding that JSON and one file part per
``{"image": "<part name>"}`` term. The combination (``retrieval.compose``) is searched like any
query vector: the same filters, paging, score floor and MMR as ``POST /search``.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from starlette.datastructures import UploadFile

from retrieval.api.deps import ServiceDep
from retrieval.api.errors import ApiError
from retrieval.api.images import decode_query_image
from retrieval.api.json_input import DepthLimitedRoute, loads_client_json
from retrieval.api.pixel_budget import decode_cost
from retrieval.api.query_models import QueryVector
from retrieval.api.routers.common import hit_out, non_default, search_params
from retrieval.api.schemas import ITEM_ID_PATTERN, SearchOptions, SearchResponse, error_responses
from retrieval.api.service import Service
from retrieval.compose import MAX_TERMS, MAX_WEIGHT, Term, TermKind, check_terms, combine

router = APIRouter(route_class=DepthLimitedRoute)
PART_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
MAX_REQUEST_PART_BYTES = 64 * 1024


class ComposeTerm(BaseModel):
    """One term: exactly one of ``text``, ``image_id`` or ``image``, and its weight."""

    model_config = ConfigDict(extra="forbid", strict=True)

    text: str | None = Field(None, min_length=1, description="a text, embedded by the model")
    image_id: str | None = Field(
        None, pattern=ITEM_ID_PATTERN, description="a stored item: its stored vector"
    )
    image: str | None = Field(
        None, pattern=PART_PATTERN,
        description="the name of a multipart file part holding an image (multipart only)",
    )
    weight: float = Field(
        1.0, ge=-MAX_WEIGHT, le=MAX_WEIGHT,
        description="how much the term counts; negative: away from it (non-zero)",
    )

    @model_validator(mode="after")
    def _one_kind(self) -> ComposeTerm:
        given = [name for name in ("text", "image_id", "image") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("each term needs exactly one of 'text', 'image_id' or 'image'")
        return self

    def as_term(self) -> Term:
        """The term as ``retrieval.compose`` takes it."""
        if self.text is not None:
            return Term(TermKind.TEXT, self.text, self.weight)
        if self.image_id is not None:
            return Term(TermKind.ITEM, self.image_id, self.weight)
        return Term(TermKind.IMAGE, self.image or "", self.weight)


class ComposedSearchRequest(SearchOptions):
    """A composed query and the usual search options."""

    terms: list[ComposeTerm] = Field(
        ..., max_length=MAX_TERMS,
        description=f"1..{MAX_TERMS} weighted terms; their unit vectors are summed and "
        "renormalised",
        examples=[[{"text": "beach"}, {"text": "sunset"}, {"text": "people", "weight": -1.0}]],
    )


def _inlined(schema: dict[str, Any]) -> dict[str, Any]:
    """A model's JSON schema with its ``$defs`` references inlined (OpenAPI cannot resolve a
    request body's own ``#/$defs/...``)."""
    defs = schema.get("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return resolve(defs[ref.rsplit("/", 1)[1]])
            return {k: resolve(v) for k, v in node.items() if k != "$defs"}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return dict(resolve(schema))


def _validate(data: Any) -> ComposedSearchRequest:
    """Validate like a FastAPI body (a 422 in the API's error shape)."""
    try:
        if isinstance(data, bytes | str):
            return ComposedSearchRequest.model_validate_json(data)
        return ComposedSearchRequest.model_validate(data)
    except ValidationError as exc:
        errors = [{**err, "loc": ("body", *err.get("loc", ()))} for err in exc.errors()]
        raise RequestValidationError(errors) from exc


async def _from_form(
    request: Request, service: Service
) -> tuple[ComposedSearchRequest, dict[str, bytes]]:
    """The request JSON part and the uploaded image parts (413 over the size cap)."""
    cap = service.settings.max_upload_bytes
    uploads: dict[str, bytes] = {}
    async with request.form(
        max_files=MAX_TERMS, max_fields=1, max_part_size=MAX_REQUEST_PART_BYTES
    ) as form:
        text = form.get("request")
        if not isinstance(text, str):
            raise ApiError(422, "a multipart composed search needs a 'request' text part with "
                           "the JSON body (terms and options)", type="invalid_request")
        parsed = loads_client_json(text, "the 'request' part", error_type="invalid_request")
        body = _validate(parsed)
        for name, value in form.multi_items():
            if name == "request":
                continue
            if not isinstance(value, UploadFile):
                raise ApiError(422, f"form field {name!r} must be a file part (an image)",
                               type="invalid_request")
            if name in uploads:
                raise ApiError(422, f"file part {name!r} is sent twice", type="invalid_request")
            data = await value.read(cap + 1)
            if len(data) > cap:
                raise ApiError(413, f"the upload {name!r} is over the cap of {cap} bytes")
            uploads[name] = data
    return body, uploads


async def _read_body(
    request: Request, service: Service
) -> tuple[ComposedSearchRequest, dict[str, bytes]]:
    """The request and its uploads, from JSON or multipart (415 for anything else)."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media == "multipart/form-data":
        return await _from_form(request, service)
    if media == "application/json" or media.endswith("+json"):
        return _validate(await request.body()), {}
    raise ApiError(
        415,
        "send application/json with 'terms', or multipart/form-data with a 'request' part "
        "(that JSON) and one file part per image term",
        type="unsupported_media_type",
    )


async def _embed_upload(service: Service, data: bytes) -> QueryVector:
    """An uploaded image's query vector (inside the decoded-pixel budget)."""
    min_side = (await service.models.embedder()).decode_min_side
    cost = await service.run_io(decode_cost, data, min_side)
    async with await service.pixels.hold(cost) as lease:  # waits, or 503 with Retry-After
        rgb = await service.run_io(
            decode_query_image, data, service.settings.max_image_pixels, min_side
        )
        lease.shrink(rgb.nbytes)
        return await service.models.embed_image(rgb)


async def _term_vectors(
    service: Service, body: ComposedSearchRequest, terms: list[Term], uploads: dict[str, bytes]
) -> tuple[list[np.ndarray], list[QueryVector]]:
    """Each term's vector, and the query vectors the model made (for the model they share)."""
    limit = service.settings.max_query_chars
    ids = sorted({t.value for t in terms if t.kind is TermKind.ITEM})
    stored: dict[str, np.ndarray] = {}
    if ids:
        records = await service.stores.call(
            body.collection, lambda store: store.get(ids, with_vectors=True)
        )
        stored = {r.id: np.asarray(r.vector, dtype=np.float32) for r in records}
        missing = [i for i in ids if i not in stored or stored[i].size == 0]
        if missing:
            name = body.collection or service.settings.collection
            raise ApiError(404, f"no item {missing[0]!r} in collection {name!r}; use the id of "
                           "a stored item (GET /items/{id})", type="item_not_found")
    made: list[QueryVector] = []
    vectors: list[np.ndarray] = []
    for term in terms:
        if term.kind is TermKind.ITEM:
            vectors.append(stored[term.value])
            continue
        if term.kind is TermKind.TEXT:
            text = term.value.strip()
            if not text or len(text) > limit:
                raise ApiError(422, f"a text term has {len(text)} characters; give 1..{limit}",
                               type="invalid_query")
            query = await service.models.embed_text(text)
        else:
            if term.value not in uploads:
                raise ApiError(422, f"image term {term.value!r} names no file part; send the "
                               "image as a multipart part of that name", type="invalid_request")
            query = await _embed_upload(service, uploads[term.value])
        made.append(query)
        vectors.append(np.asarray(query.vector, dtype=np.float32))
    return vectors, made


@router.post(
    "/search/composed",
    tags=["search"],
    response_model=SearchResponse,
    summary="Composed query: weighted texts, stored items and uploaded images",
    responses=error_responses(400, 404, 409, 413, 415, 422, 503),
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": _inlined(ComposedSearchRequest.model_json_schema())},
        "multipart/form-data": {"schema": {
            "type": "object", "required": ["request"],
            "properties": {"request": {"type": "string",
                                       "description": "the JSON body (terms and options)"}},
            "additionalProperties": {"type": "string", "format": "binary"},
        }},
    }}},
)
async def search_composed(request: Request, service: ServiceDep) -> SearchResponse:
    """Rank stored items by the weighted sum of the terms' unit vectors, renormalised.

    A term is ``{"text": ...}``, ``{"image_id": ...}`` (a stored item's vector) or
    ``{"image": "<part>"}`` (an uploaded file part, multipart only), with a ``weight`` (default
    1, negative to steer away). Empty or all-negative compositions, weights summing to zero and
    terms that cancel out are a 422; an unknown ``image_id`` a 404.
    """
    started = time.perf_counter()
    body, uploads = await _read_body(request, service)
    terms = [t.as_term() for t in body.terms]
    check_terms(terms)  # bad compositions fail before the model runs
    unused = sorted(set(uploads) - {t.value for t in terms if t.kind is TermKind.IMAGE})
    if unused:
        raise ApiError(422, f"file part {unused[0]!r} is not named by any image term",
                       type="invalid_request")
    params = await search_params(service, body)
    if params.mode not in (None, "vector"):
        raise ApiError(422, f"a composed query is searched by vector only; drop mode="
                       f"{params.mode} or send mode=vector", type="invalid_request")
    params = replace(params, mode="vector")
    vectors, made = await _term_vectors(service, body, terms, uploads)
    combined = combine(terms, vectors)
    if made and any(q.embedder is not made[0].embedder for q in made):
        raise ApiError(503, "the query model changed while this request ran; send it again",
                       type="model_unavailable", headers={"Retry-After": "1"})
    query = (QueryVector(combined, made[0].embedder, made[0].collection) if made
             else await service.models.as_query(combined))
    hits = await service.searches.search(query, body.collection, params)
    shown = non_default(service, body.collection)
    return SearchResponse(
        collection=body.collection or service.settings.collection,
        k=body.k,
        offset=body.offset,
        hits=[hit_out(request, hit, shown) for hit in hits],
        took_ms=round((time.perf_counter() - started) * 1000.0, 3),
    )
