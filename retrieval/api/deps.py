"""Annotated dependencies for route handlers.

``async def``: FastAPI runs a plain ``def`` dependency on its thread pool, a thread hop per
request for what is an attribute read.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from retrieval.api.service import Service


async def get_service(request: Request) -> Service:
    """The process-wide Service built by the lifespan."""
    service: Service = request.app.state.service
    return service


ServiceDep = Annotated[Service, Depends(get_service)]
