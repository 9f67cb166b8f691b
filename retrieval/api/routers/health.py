"""GET /health (the process is up) and GET /ready (model loaded, Milvus answering)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter

from retrieval.api.deps import ServiceDep
from retrieval.api.errors import ApiError
from retrieval.api.schemas import HealthResponse, ReadyResponse, error_responses
from retrieval.api.service import READY_TIMEOUT_S
from retrieval.errors import StoreError

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthResponse, summary="Liveness")
async def health() -> HealthResponse:
    """200 while the process serves requests (never needs the API key)."""
    return HealthResponse()


@router.get(
    "/ready",
    response_model=ReadyResponse,
    summary="Readiness",
    responses=error_responses(401, 503),
)
async def ready(service: ServiceDep) -> ReadyResponse:
    """200 when the query model is loaded and Milvus answers; 503 with the reason otherwise."""
    state, error = service.models.state
    problems = []
    if state == "loading":
        problems.append("query model is still loading")
    elif state == "failed":
        problems.append(f"query model failed to load: {error}")
    exists = False
    try:
        exists = await asyncio.wait_for(
            service.stores.call(None, lambda store: store.exists()), timeout=READY_TIMEOUT_S
        )
    except asyncio.TimeoutError:
        problems.append(f"Milvus did not answer within {READY_TIMEOUT_S:g}s")
    except StoreError as exc:
        problems.append(f"Milvus is not answering: {exc}")
    if problems:
        raise ApiError(503, "; ".join(problems), type="not_ready")
    return ReadyResponse(
        model=service.models.model_id or service.components.embedder.model_id,
        collection=service.settings.collection,
        collection_exists=bool(exists),
    )
