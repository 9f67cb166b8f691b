"""mmrag serve [--host 127.0.0.1] [--port 8000]: run the search API with uvicorn."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from retrieval.config import Settings
from retrieval.errors import ConfigError
from retrieval.stores import is_local_uri

if TYPE_CHECKING:
    from fastapi import FastAPI

# Settings the CLI can override; exported to MMRAG_* so that worker processes see them too.
_EXPORTED = ("uri", "collection", "model", "pretrained", "checkpoint", "device")


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Register the subcommand."""
    p = sub.add_parser(
        "serve",
        parents=[common],
        help="run the search API (FastAPI on uvicorn)",
        description="Serve POST /search, /search/image, GET /items/{id}[/image], /collections, "
        "/stats, /health, /ready, /metrics and the OpenAPI docs at /docs. Milvus Lite (a .db "
        "file) is owned by one process, so it is served by one worker; use a Milvus server "
        "URI (http://host:19530) for --workers > 1.",
    )
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    p.add_argument(
        "--workers", type=int, default=1, help="worker processes (Milvus server URIs only)"
    )
    p.add_argument(
        "--log-level", choices=("debug", "info", "warning", "error"), default=None,
        help="uvicorn log level (default MMRAG_LOG_LEVEL)",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Start uvicorn; returns when the server stops (Ctrl-C or SIGTERM)."""
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must be within 0..65535, got {args.port}")
    if args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {args.workers}")
    if args.workers > 1 and is_local_uri(settings.uri):
        raise ConfigError(
            f"Milvus Lite ({settings.uri}) is owned by one process: serve it with --workers 1, "
            "or point MMRAG_URI at a Milvus server for several workers"
        )
    import uvicorn

    from retrieval.api import create_app

    log_level = args.log_level or settings.log_level
    if args.workers == 1:
        uvicorn.run(
            create_app(settings), host=args.host, port=args.port, log_level=log_level,
            timeout_graceful_shutdown=10,
        )
        return 0
    for name in _EXPORTED:
        value = getattr(settings, name)
        if value is not None:
            os.environ[f"MMRAG_{name.upper()}"] = str(value)
    uvicorn.run(
        "mmrag.commands.serve:worker_app", factory=True, host=args.host, port=args.port,
        workers=args.workers, log_level=log_level, timeout_graceful_shutdown=10,
    )
    return 0


def worker_app() -> FastAPI:
    """The app of one worker process (``--workers`` > 1), with the CLI's quiet loggers."""
    from mmrag.cli import quiet_libraries
    from retrieval.api import create_app

    quiet_libraries()
    return create_app()
