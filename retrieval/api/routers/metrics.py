"""GET /metrics in the Prometheus text format."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from retrieval.api.deps import ServiceDep
from retrieval.api.metrics import CONTENT_TYPE

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    summary="Prometheus metrics",
    responses={200: {"content": {"text/plain": {}}}},
)
async def metrics(service: ServiceDep) -> PlainTextResponse:
    """Request counts and latencies per route, model (embed) and Milvus (search) time."""
    return PlainTextResponse(service.metrics.render(), media_type=CONTENT_TYPE)
