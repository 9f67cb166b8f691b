"""mmrag serve [--host 127.0.0.1] [--port 8000]: run the search API with uvicorn."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from retrieval.errors import ConfigError

if TYPE_CHECKING:
    import uvicorn
    from fastapi import FastAPI

    from retrieval.api.service import Service
    from retrieval.config import Settings

log = logging.getLogger(__name__)
OWNER_POLL_S = 1.0  # how often a server that does not own its Lite file yet looks again

# The routes, by group, as `mmrag serve --help` lists them.
ROUTES = """routes:
  search       POST /search (text), POST /search/image (upload or URL), POST /search/similar
  items        GET /items/{id}, GET /items/{id}/image (the stored image or a thumbnail),
               DELETE /items/{id}, POST /items/delete (a filter, with "confirm": true)
  ingest       POST /ingest (uploads, URLs, server paths under MMRAG_INGEST_ROOTS),
               GET /ingest[/{id}[/events]], DELETE /ingest/{id} (cancel)
  collections  GET /collections, GET /stats, GET /fields (filterable fields and values)
  chat         POST /chat (grounded answer with citations; SSE with "stream": true)
  /v1          OpenAI-compatible: POST /v1/chat/completions, POST /v1/completions,
               GET /v1/models (for the openai, LangChain and LlamaIndex clients)
  UI           GET / (web UI: search, similar images, chat), GET /static/*
  operations   GET /health, GET /ready, GET /metrics (Prometheus)
  docs         GET /docs (Swagger UI), GET /redoc, GET /openapi.json
"""

# Settings the CLI can override; exported to MMRAG_* so that worker processes see them too.
_EXPORTED = ("uri", "collection", "model", "pretrained", "checkpoint", "device")


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Register the subcommand."""
    p = sub.add_parser(
        "serve",
        parents=[common],
        help="run the search API (FastAPI on uvicorn)",
        description="Serve the search API, the OpenAI-compatible /v1 routes and the web UI. "
        "Milvus Lite (a .db file) is owned by one process, so it is served by one worker; use "
        "a Milvus server URI (http://host:19530) for --workers > 1. With MMRAG_API_KEY set, "
        "every data route needs the key (not /health, the UI's page and the docs pages).",
        epilog=ROUTES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
    p.add_argument(
        "--watch", metavar="DIR", action="append", default=[],
        help="also keep the collection in sync with this folder (as mmrag watch DIR does), on "
        "a thread of the server writing through its own store; repeatable",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Start uvicorn; returns when the server stops (Ctrl-C or SIGTERM)."""
    from retrieval.stores import is_local_uri

    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must be within 0..65535, got {args.port}")
    if args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {args.workers}")
    if args.workers > 1 and is_local_uri(settings.uri):
        raise ConfigError(
            f"Milvus Lite ({settings.uri}) is owned by one process: serve it with --workers 1, "
            "or point MMRAG_URI at a Milvus server for several workers"
        )
    log_level = args.log_level or settings.log_level or "info"  # requests are logged by default
    with _watching(settings, args.watch):
        return _serve(args, settings, log_level)


def _serve(args: argparse.Namespace, settings: Settings, log_level: str) -> int:
    """uvicorn with one app, or several worker processes."""
    import uvicorn

    from retrieval.api import create_app

    if args.workers == 1:
        app = create_app(settings)
        config = uvicorn.Config(app, host=args.host, port=args.port, log_level=log_level,
                                timeout_graceful_shutdown=10)
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C stops it cleanly, as uvicorn.run
            _owning_server(app, config).run()
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


def _owning_server(app: FastAPI, config: uvicorn.Config) -> uvicorn.Server:
    """uvicorn's server that, once listening and owning its Lite file (at start, or once a file
    missing at start was created and opened), publishes the file's owner file (other commands
    then work through it: retrieval/stores/owner.py), and removes it first thing on shutdown."""
    import asyncio

    import uvicorn

    from retrieval.stores import is_local_uri
    from retrieval.stores.owner_file import OwnerRecord, loopback_url, publish, withdraw

    class OwningServer(uvicorn.Server):
        published: OwnerRecord | None = None
        publisher: asyncio.Task[None] | None = None

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            service = getattr(app.state, "service", None)
            if not self.started or service is None or not is_local_uri(service.settings.uri):
                return
            host, port = self.servers[0].sockets[0].getsockname()[:2]
            url = loopback_url(str(host), int(port))
            if url is None:
                log.warning("other mmrag commands on %s cannot work through this server: it "
                            "listens on %s only (use --host 127.0.0.1 or 0.0.0.0 for that)",
                            service.settings.uri, host)
                return
            self.publisher = asyncio.create_task(self.publish_once_owned(service, url))

        async def publish_once_owned(self, service: Service, url: str) -> None:
            while not self.should_exit:
                db = service.owned_db
                if db is not None:
                    token = secrets.token_urlsafe(32)
                    app.state.owner_token = token
                    self.published = OwnerRecord(url=url, token=token, pid=os.getpid(), db=db)
                    publish(self.published)
                    return
                await asyncio.sleep(OWNER_POLL_S)

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            if self.publisher is not None:
                self.publisher.cancel()
            if self.published is not None:
                withdraw(self.published)
            await super().shutdown(sockets=sockets)

    return OwningServer(config)


@contextmanager
def _watching(settings: Settings, folders: list[str]) -> Iterator[None]:
    """Run a folder watcher (``ingest.watch``) per ``--watch`` folder while the server runs:
    each on its own thread with its own store and model, stopped after the server."""
    if not folders:
        yield
        return
    import threading
    from pathlib import Path

    from ingest import IngestOptions
    from ingest.rejects import RejectsFile, default_rejects_path
    from ingest.watch import FolderWatcher
    from retrieval.components import build_components

    roots = [Path(folder).expanduser() for folder in folders]
    for root, folder in zip(roots, folders, strict=True):
        if not root.is_dir():
            raise ConfigError(f"--watch {folder!r} is not a folder; create it or give another")
    log = logging.getLogger("mmrag.watch")
    stop = threading.Event()
    components = [build_components(settings) for _ in roots]
    rejects = RejectsFile(default_rejects_path(settings.uri, settings.collection))
    threads = [
        threading.Thread(
            target=FolderWatcher(
                parts, root, log.info, rejects=rejects,
                options=IngestOptions(batch_size=settings.batch_size,
                                      max_pixels=settings.max_image_pixels),
            ).run,
            args=(stop,), name=f"mmrag-watch-{i}", daemon=True,
        )
        for i, (parts, root) in enumerate(zip(components, roots, strict=True))
    ]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        rejects.close()
        for parts in components:
            parts.close()


def worker_app() -> FastAPI:
    """The app of one worker process (``--workers`` > 1), with the CLI's quiet loggers."""
    from mmrag.logs import hide_library_warnings, quiet_libraries
    from retrieval.api import create_app

    hide_library_warnings()
    quiet_libraries()
    return create_app()
