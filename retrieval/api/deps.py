"""Annotated dependencies for route handlers: settings, service, components, searcher.

All ``async def``: FastAPI runs a plain ``def`` dependency on its thread pool, a thread hop
per request for what is an attribute read.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from retrieval.api.service import Service
from retrieval.components import Components
from retrieval.config import Settings
from retrieval.search import Searcher


async def get_service(request: Request) -> Service:
    """The process-wide Service built by the lifespan."""
    service: Service = request.app.state.service
    return service


async def get_settings(request: Request) -> Settings:
    """The app's settings."""
    settings: Settings = request.app.state.settings
    return settings


async def get_components(service: Annotated[Service, Depends(get_service)]) -> Components:
    """The shared embedder and store (the store is swapped on reconnect: read it per use)."""
    return service.components


async def get_searcher(service: Annotated[Service, Depends(get_service)]) -> Searcher:
    """A Searcher over the default collection with the loaded query model (503 if not loaded).

    Its calls block: run them off the event loop (``service.run_io`` or ``service.call_store``).
    """
    embedder = await service.embedder()
    return Searcher(embedder, service.components.store)


ServiceDep = Annotated[Service, Depends(get_service)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
ComponentsDep = Annotated[Components, Depends(get_components)]
SearcherDep = Annotated[Searcher, Depends(get_searcher)]
