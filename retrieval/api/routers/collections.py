"""GET /collections and GET /stats."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from retrieval.api.deps import ServiceDep
from retrieval.api.schemas import (
    COLLECTION_PATTERN,
    CacheStats,
    CollectionOut,
    CollectionsResponse,
    StatsResponse,
    error_responses,
)
from retrieval.errors import CollectionNotFoundError, StoreError, StoreUnavailableError

router = APIRouter(tags=["collections"])


@router.get(
    "/collections",
    response_model=CollectionsResponse,
    summary="Collections this server can search",
    responses=error_responses(503),
)
async def list_collections(service: ServiceDep) -> CollectionsResponse:
    """Every mmrag collection at the configured Milvus, with count, model and index."""
    out = []
    for name in await service.stores.list_collections():
        try:
            info = await service.stores.info(name)
        except StoreUnavailableError:
            raise
        except (CollectionNotFoundError, StoreError):
            continue  # dropped meanwhile, or not created by mmrag
        out.append(
            CollectionOut(**info.as_dict(), default=info.name == service.settings.collection)
        )
    return CollectionsResponse(collections=out)


@router.get(
    "/stats",
    response_model=StatsResponse,
    summary="Count, model, dimension and index",
    responses=error_responses(404, 422, 503),
)
async def stats(
    service: ServiceDep,
    collection: Annotated[str | None, Query(pattern=COLLECTION_PATTERN)] = None,
) -> StatsResponse:
    """What a collection holds and how this server queries it."""
    info = await service.stores.info(collection)
    state, _ = service.models.state
    query_model = service.models.model_id if state == "ok" else None
    fields = info.as_dict()
    return StatsResponse(
        collection=fields.pop("name"),
        **fields,
        query_model=query_model,
        model_loaded=query_model is not None,
        query_cache=CacheStats(
            size=len(service.models.cache),
            capacity=service.models.cache.size,
            hits=int(service.metrics.cache.value("hit")),
            misses=int(service.metrics.cache.value("miss")),
        ),
    )
