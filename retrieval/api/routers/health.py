"""GET/HEAD /health (the process is up) and GET /ready (model loaded, Milvus answering, the
configured collection present)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter

from retrieval.api.deps import ServiceDep
from retrieval.api.errors import ApiError
from retrieval.api.schemas import HealthResponse, ReadyResponse, error_responses
from retrieval.api.service import READY_TIMEOUT_S, Service
from retrieval.errors import StoreError

router = APIRouter(tags=["health"])


# HEAD registered after GET: a 405 (e.g. OPTIONS) then comes from the documented GET route
@router.head("/health", response_model=HealthResponse, include_in_schema=False)  # GET's headers
@router.get(
    "/health", response_model=HealthResponse, summary="Liveness",
    responses=error_responses(public=True),
)
async def health() -> HealthResponse:
    """200 while the process serves requests (never needs the API key); HEAD answers too."""
    return HealthResponse()


def _missing_collection(service: Service) -> str:
    """Why a server without its collection is not ready, and what to do about it."""
    settings = service.settings
    return (
        f"collection {settings.collection!r} does not exist at {service.stores.default.where}: "
        "ingest into it (mmrag ingest ...), restore the database file, or set "
        "MMRAG_COLLECTION to an existing collection"
    )


@router.get(
    "/ready",
    response_model=ReadyResponse,
    summary="Readiness",
    responses=error_responses(503),
)
async def ready(service: ServiceDep) -> ReadyResponse:
    """200 when the query model is loaded, Milvus answers and the configured collection
    exists; 503 with the reasons otherwise (a load balancer keeps traffic away)."""
    state, error = service.models.state
    problems = []
    if state == "loading":
        problems.append("query model is still loading")
    elif state == "failed":
        problems.append(f"query model failed to load: {error}")
    exists: bool | None = None
    try:
        exists = await asyncio.wait_for(
            service.stores.call(None, lambda store: store.exists()), timeout=READY_TIMEOUT_S
        )
    except asyncio.TimeoutError:
        problems.append(f"Milvus did not answer within {READY_TIMEOUT_S:g}s")
    except StoreError as exc:
        problems.append(f"Milvus is not answering: {exc}")
    if exists is False:
        problems.append(_missing_collection(service))
    if problems:
        details = {"collection": service.settings.collection, "collection_exists": exists}
        raise ApiError(503, "; ".join(problems), type="not_ready", details=details)
    return ReadyResponse(
        model=service.models.model_id or service.components.embedder.model_id,
        collection=service.settings.collection,
        collection_exists=True,
    )
