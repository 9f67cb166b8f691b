"""Routers of the API; create_app includes every router in ROUTERS (add new ones here).

Every route but ``/health`` sits behind the optional API key (enforced by middleware, so a
router added here is protected without further wiring). ``owner`` (hidden /_owner routes for
other mmrag commands on a served Lite file) checks its own token instead (middleware.py).
"""

from fastapi import APIRouter

from retrieval.api.routers import (
    chat,
    collections,
    compose,
    duplicates,
    health,
    ingest,
    items,
    metrics,
    openai_compat,
    owner,
    search,
    ui,
)

ROUTERS: tuple[APIRouter, ...] = (
    health.router,
    search.router,
    compose.router,
    duplicates.router,
    items.router,
    ingest.router,
    collections.router,
    metrics.router,
    chat.router,
    openai_compat.router,
    ui.router,
    owner.router,
)
