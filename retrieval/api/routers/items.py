"""GET /items/{id} (fields), GET /items/{id}/image (original bytes or cached thumbnail),
DELETE /items/{id}, and POST /items/delete (every item a filter matches, confirmed)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from retrieval.api.deps import ServiceDep
from retrieval.api.errors import ApiError
from retrieval.api.images import fetch_image, make_thumbnail, read_original, remote_source
from retrieval.api.pixel_budget import decode_cost
from retrieval.api.routers.common import image_urls, non_default
from retrieval.api.schemas import (
    COLLECTION_PATTERN,
    ITEM_ID_PATTERN,
    ItemOut,
    ItemsDeleted,
    ItemsDeleteRequest,
    error_responses,
)
from retrieval.api.service import Service
from retrieval.errors import ImageDecodeError
from retrieval.filters import build_expression, requested_keys
from retrieval.stores.base import VectorStore
from retrieval.types import Modality, Record

router = APIRouter(tags=["items"])

ItemId = Annotated[
    str, Path(pattern=ITEM_ID_PATTERN, description="stored id (letters, digits, . _ : -)")
]
CollectionParam = Annotated[
    str | None,
    Query(pattern=COLLECTION_PATTERN, description="collection (default: the server's)"),
]
ThumbSize = Annotated[
    int | None,
    Query(ge=16, le=1024, description="longest side of a cached JPEG thumbnail (16..1024)"),
]
IMAGE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Cache-Control": "private, max-age=3600",
}


async def _record(service: Service, collection: str | None, item_id: str) -> Record:
    record = await service.stores.get_record(collection, item_id)
    if record is None:
        name = collection or service.settings.collection
        raise ApiError(404, f"no item {item_id!r} in collection {name!r}", type="item_not_found")
    return record


@router.get(
    "/items/{item_id}",
    response_model=ItemOut,
    summary="A stored item's fields",
    responses=error_responses(404, 422, 503),
)
async def get_item(
    item_id: ItemId, request: Request, service: ServiceDep, collection: CollectionParam = None
) -> ItemOut:
    """Caption, metadata, source and model of one stored item."""
    record = await _record(service, collection, item_id)
    original, thumbnail = image_urls(request, record.id, non_default(service, collection))
    return ItemOut(
        id=record.id,
        collection=collection or service.settings.collection,
        caption=record.caption,
        metadata=dict(record.metadata),
        source=record.source,
        modality=getattr(record.modality, "value", str(record.modality)),
        model_id=record.model_id,
        image_url=original,
        thumbnail_url=thumbnail,
    )


EVERY_ROW = 'id != ""'  # stored ids are never empty: what an empty filter matches
MATCH_BATCH = 1000


@router.delete(
    "/items/{item_id}",
    response_model=ItemsDeleted,
    summary="Delete a stored item",
    responses=error_responses(404, 422, 503),
)
async def delete_item(
    item_id: ItemId, service: ServiceDep, collection: CollectionParam = None
) -> ItemsDeleted:
    """Remove one item (its row; the image file it came from is left alone)."""
    await _record(service, collection, item_id)  # 404 when it is not stored
    await service.stores.call(collection, lambda store: store.delete([item_id]))
    return ItemsDeleted(
        collection=collection or service.settings.collection, deleted=1, matched=1,
        ids=[item_id],
    )


@router.post(
    "/items/delete",
    response_model=ItemsDeleted,
    summary="Delete every item a filter matches",
    responses=error_responses(404, 422, 503),
)
async def delete_items(body: ItemsDeleteRequest, service: ServiceDep) -> ItemsDeleted:
    """Remove every item the filter matches (the filter language of /search; empty: every
    item). Without ``confirm: true`` nothing is deleted and the answer is a 422 that says how
    many items the filter matches; ``dry_run: true`` only counts them."""
    name = body.collection or service.settings.collection
    expr = EVERY_ROW
    if body.filter:
        wanted = requested_keys(body.filter)
        keys = (await service.fields.metadata_keys(body.collection, wanted)
                if wanted else frozenset())
        expr = build_expression(body.filter, keys) or EVERY_ROW
    if body.dry_run or not body.confirm:
        matched, total = await service.stores.call(
            body.collection, lambda store: (_count_where(store, expr), store.count())
        )
        if body.dry_run:
            return ItemsDeleted(collection=name, deleted=0, matched=matched, dry_run=True)
        everything = " (every item of the collection)" if matched and matched == total else ""
        raise ApiError(
            422,
            f"the filter matches {matched} item(s){everything} of collection {name!r}; nothing "
            "was deleted: send the request again with \"confirm\": true to delete them (or "
            "\"dry_run\": true to count them)",
            type="confirmation_required", details={"matched": matched},
        )
    deleted = await service.stores.call(body.collection, lambda store: store.delete_where(expr))
    return ItemsDeleted(collection=name, deleted=deleted, matched=deleted)


def _count_where(store: VectorStore, expr: str) -> int:
    """How many stored rows match ``expr`` (blocking)."""
    return sum(len(batch) for batch in store.iterate_where(expr, MATCH_BATCH))


@router.get(
    "/items/{item_id}/image",
    summary="A stored item's image",
    response_class=Response,
    responses={
        200: {"content": {"image/*": {}}, "description": "the image bytes"},
        307: {"description": "redirect to the item's http(s) source"},
        **error_responses(404, 410, 415, 422, 503),
    },
)
async def get_item_image(
    item_id: ItemId,
    service: ServiceDep,
    size: ThumbSize = None,
    collection: CollectionParam = None,
) -> Response:
    """The original bytes with their content type, or with ``size`` a cached JPEG thumbnail.

    Only the stored record's own source is read: a file or video frame that was ingested, or,
    for an http(s) source, a redirect (originals) or a guarded fetch (thumbnails).
    """
    record = await _record(service, collection, item_id)
    if record.modality is Modality.TEXT:  # a passage of a text document has no image
        raise ApiError(
            415,
            f"item {record.id!r} is a text passage, not an image; its text is the item's "
            f"caption: GET /items/{record.id} returns it with its document and position",
            type="unsupported_media_type",
        )
    remote = remote_source(record)
    if size is None:
        if remote is not None:
            return RedirectResponse(remote, status_code=307)
        original = await service.run_io(read_original, record)
        return Response(original.data, media_type=original.media_type, headers=IMAGE_HEADERS)
    name = collection or service.settings.collection
    cache = service.thumbnails
    path = await service.run_io(cache.path_for, name, record, size)
    thumb = await service.run_io(cache.get, path)
    if thumb is None:
        settings = service.settings
        if remote is not None:
            data = await fetch_image(
                remote, max_bytes=settings.max_upload_bytes,
                allow_private=settings.allow_private_urls,
            )
        else:
            data = (await service.run_io(read_original, record)).data
        try:
            cost = await service.run_io(decode_cost, data, 2 * size)
            async with await service.pixels.hold(cost):  # waits, or 503 with Retry-After
                thumb = await service.run_io(
                    make_thumbnail, data, size, settings.max_image_pixels
                )
        except ImageDecodeError as exc:
            raise ApiError(
                410, f"the source of item {record.id!r} is no longer a usable image: {exc}",
                type="source_gone",
            ) from exc
        await service.run_io(cache.put, path, thumb)
    return Response(thumb, media_type="image/jpeg", headers=IMAGE_HEADERS)
