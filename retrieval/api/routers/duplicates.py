"""GET /duplicates: groups of near-identical images (Milvus range search, union-find)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from retrieval.api.deps import ServiceDep
from retrieval.api.routers.common import image_urls, non_default
from retrieval.api.schemas import COLLECTION_PATTERN, error_responses
from retrieval.duplicates import (
    DEFAULT_THRESHOLD,
    MAX_PAGE_SIZE,
    DuplicatePage,
    check_paging,
    check_threshold,
    duplicate_page,
)

router = APIRouter(tags=["duplicates"])


class DuplicateMemberOut(BaseModel):
    """One image of a group."""

    id: str
    source: str
    caption: str
    image_url: str
    thumbnail_url: str


class DuplicateGroupOut(BaseModel):
    """Images linked by pairs scoring at least the threshold."""

    size: int
    min_score: float = Field(description="the weakest similarity that joined the group")
    max_score: float
    members: list[DuplicateMemberOut]


class DuplicatesResponse(BaseModel):
    """A page of duplicate groups, largest first, and the totals of the scan."""

    collection: str
    threshold: float
    page: int
    page_size: int
    total_groups: int
    total_images: int = Field(description="images in any group")
    scanned: int = Field(description="images searched")
    groups: list[DuplicateGroupOut]


@router.get(
    "/duplicates",
    response_model=DuplicatesResponse,
    summary="Groups of near-identical images",
    responses=error_responses(404, 422, 503),
)
async def get_duplicates(
    request: Request,
    service: ServiceDep,
    threshold: Annotated[float, Query(
        description="cosine similarity a pair needs, within (0, 1]",
    )] = DEFAULT_THRESHOLD,
    page: Annotated[int, Query(description="page of groups, from 1")] = 1,
    page_size: Annotated[int, Query(description=f"groups per page (1..{MAX_PAGE_SIZE})")] = 20,
    collection: Annotated[str | None, Query(
        pattern=COLLECTION_PATTERN, description="collection (default: the server's)",
    )] = None,
) -> DuplicatesResponse:
    """Scan the collection (each image range-searched once) and return one page of groups.

    A threshold outside (0, 1], a page below 1 or a page size outside 1..100 is a 422.
    """
    check_threshold(threshold)  # ConfigError: the API's 422 invalid_request
    check_paging(page, page_size)
    found: DuplicatePage = await service.stores.call(
        collection, lambda store: duplicate_page(store, threshold, page=page, page_size=page_size)
    )
    shown = non_default(service, collection)
    groups = []
    for group in found.groups:
        members = []
        for member in group.members:
            original, thumbnail = image_urls(request, member.id, shown)
            members.append(DuplicateMemberOut(
                id=member.id, source=member.source, caption=member.caption,
                image_url=original, thumbnail_url=thumbnail,
            ))
        groups.append(DuplicateGroupOut(
            size=len(members), min_score=group.min_score, max_score=group.max_score,
            members=members,
        ))
    return DuplicatesResponse(
        collection=collection or service.settings.collection,
        threshold=found.threshold,
        page=found.page,
        page_size=found.page_size,
        total_groups=found.total_groups,
        total_images=found.total_images,
        scanned=found.scanned,
        groups=groups,
    )
