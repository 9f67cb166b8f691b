"""GET /items/{id} (fields) and GET /items/{id}/image (original bytes or cached thumbnail)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from retrieval.api.deps import ServiceDep
from retrieval.api.errors import ApiError
from retrieval.api.images import fetch_image, make_thumbnail, read_original, remote_source
from retrieval.api.pixel_budget import decode_cost
from retrieval.api.routers.common import image_urls, non_default
from retrieval.api.schemas import COLLECTION_PATTERN, ITEM_ID_PATTERN, ItemOut, error_responses
from retrieval.api.service import Service
from retrieval.errors import ImageDecodeError
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
