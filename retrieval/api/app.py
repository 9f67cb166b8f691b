"""create_app(settings): the FastAPI search service (also an ASGI factory for uvicorn)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi

from retrieval.api.docs import OPENAPI_URL, install_docs
from retrieval.api.errors import install_error_handlers
from retrieval.api.metrics import ApiMetrics
from retrieval.api.middleware import (
    PUBLIC_PATHS,
    ApiKeyMiddleware,
    BodyLimitMiddleware,
    MetricsMiddleware,
)
from retrieval.api.openai.errors import is_openai_path
from retrieval.api.routers import ROUTERS
from retrieval.api.schemas import document_middleware_statuses
from retrieval.api.service import Service
from retrieval.config import Settings

FORM_OVERHEAD_BYTES = 1024 * 1024
DESCRIPTION = """\
Text-to-image and image-to-image search over a Milvus collection of CLIP embeddings.

* Errors are JSON: `{"error": {"type": ..., "message": ..., "details"?: ...}}`; under `/v1`
  (OpenAI-compatible) they are OpenAI's `{"error": {"message", "type", "param", "code"}}`.
* With `MMRAG_API_KEY` set, every route but `/health`, the web UI's page and these docs needs
  `Authorization: Bearer <key>` or `X-API-Key: <key>` (the Authorize button sends it).
* Milvus Lite (a `.db` file) is owned by one process: serve it with one worker. A Milvus
  server (`MMRAG_URI=http://host:19530`) can be shared by several workers.
"""


def _version() -> str:
    """The installed package version ("0" in a bare source checkout)."""
    try:
        return version("mmrag")
    except PackageNotFoundError:
        return "0"


def create_app(settings: Settings | None = None) -> FastAPI:
    """The search API; the lifespan builds components once and loads the model off the loop."""
    settings = settings or Settings(**{})  # reads MMRAG_* from the environment
    metrics = ApiMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service = await asyncio.to_thread(Service.open, settings, metrics)
        service.start()
        app.state.service = service
        try:
            yield
        finally:
            await service.close()

    app = FastAPI(
        title="mmrag search API",
        version=_version(),
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_url=OPENAPI_URL,
        docs_url=None,  # served offline by install_docs
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    install_error_handlers(app)
    install_docs(app)
    for router in ROUTERS:
        app.include_router(router)
    # Added innermost first: metrics -> CORS -> API key -> body cap -> routes.
    body_cap = settings.max_upload_bytes + FORM_OVERHEAD_BYTES
    ingest_cap = settings.ingest_request_mb * 2**20  # many files in one upload
    app.add_middleware(BodyLimitMiddleware, max_bytes=body_cap, larger={"/ingest": ingest_cap})
    app.add_middleware(ApiKeyMiddleware, api_key=settings.api_key)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type"],
            max_age=600,
        )
    app.add_middleware(MetricsMiddleware, metrics=metrics, routes=lambda: app.routes)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI schema with the optional API-key schemes documented."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
        schemes["bearer"] = {"type": "http", "scheme": "bearer"}
        schemes["apiKey"] = {"type": "apiKey", "in": "header", "name": "X-API-Key"}
        schema["security"] = [{"bearer": []}, {"apiKey": []}, {}]
        # 400, 401 and 413 on every route (/v1 documents its own, in OpenAI's shape)
        document_middleware_statuses(schema, PUBLIC_PATHS, skip=is_openai_path)
        for path, operations in schema.get("paths", {}).items():
            if is_openai_path(path):  # /v1 answers validation errors as OpenAI's 400
                for operation in operations.values():
                    operation.get("responses", {}).pop("422", None)
        app.openapi_schema = schema
    return app.openapi_schema
