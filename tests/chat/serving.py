"""The API app served by uvicorn on a free loopback port in a thread, until the block ends."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import uvicorn
from fastapi import FastAPI

READY_TIMEOUT_S = 120.0


@contextmanager
def serve_app(app: FastAPI, key: str | None = None) -> Iterator[str]:
    """Run ``app`` on 127.0.0.1; yields its base URL once ``/ready`` answers 200."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    deadline = time.monotonic() + READY_TIMEOUT_S
    try:
        with httpx.Client(base_url=url, headers=headers, trust_env=False) as client:
            while True:
                try:
                    if client.get("/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert thread.is_alive(), "the API stopped before it became ready"
                assert time.monotonic() < deadline, "the API did not become ready in time"
                time.sleep(0.1)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
