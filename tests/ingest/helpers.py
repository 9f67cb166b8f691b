"""Builders for ingest tests: videos, bad files, a loopback image server, store readers."""

from __future__ import annotations

import contextlib
import struct
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np

from retrieval.stores.base import VectorStore
from retrieval.types import Record
from tests.support.images import make_test_image


def write_video(
    path: Path, seconds: float, fps: float = 10.0, size: tuple[int, int] = (96, 128),
    fourcc: str = "mp4v", seed: int = 500,
) -> Path:
    """Write a real video with cv2.VideoWriter: each second shows a different test image."""
    height, width = size
    code = cv2.VideoWriter.fourcc(*fourcc)
    writer = cv2.VideoWriter(str(path), code, fps, (width, height))
    if not writer.isOpened():
        raise OSError(f"cv2.VideoWriter cannot write {path} with {fourcc}")
    frames = round(seconds * fps)
    for index in range(frames):
        rgb = make_test_image(seed + int(index // fps), height, width)
        writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def png_bomb(width: int = 9_000, height: int = 9_000) -> bytes:
    """A tiny PNG whose header announces width x height pixels (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    idat = zlib.compress(b"\x00" * 1024)
    signature = b"\x89PNG\r\n\x1a\n"
    return signature + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def stored_records(store: VectorStore) -> list[Record]:
    """Every record in the store (without vectors)."""
    return [r for batch in store.iterate(1000, with_vectors=False) for r in batch]


def source_counts(store: VectorStore) -> Counter[str]:
    """How many stored rows have each source."""
    return Counter(r.source for r in stored_records(store))


@dataclass
class Route:
    """What the loopback server answers on one path."""

    status: int = 200
    body: bytes = b""
    content_type: str | None = "image/jpeg"
    delay_s: float = 0.0
    fail_first: int = 0  # answer 503 this many times first
    send_length: bool = True
    headers: dict[str, str] = field(default_factory=dict)


class _Server(ThreadingHTTPServer):
    """A threading server with a listen backlog for many concurrent fetches."""

    daemon_threads = True
    request_queue_size = 128


class ImageServer:
    """A ThreadingHTTPServer on 127.0.0.1 serving configured routes and counting hits."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.hits: Counter[str] = Counter()
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                server.handle(self)

        self.httpd = _Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def url(self, path: str) -> str:
        """The URL of a route."""
        return self.base + path

    def add(self, path: str, route: Route) -> str:
        """Serve route at path; returns its URL."""
        self.routes[path] = route
        return self.url(path)

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        """Answer one GET."""
        path = request.path
        with self.lock:
            self.hits[path] += 1
            hit = self.hits[path]
        route = self.routes.get(path)
        if route is None:
            request.send_error(404, "Not Found")
            return
        if route.delay_s:
            time.sleep(route.delay_s)
        if hit <= route.fail_first:
            request.send_error(503, "Service Unavailable")
            return
        request.send_response(route.status)
        if route.content_type is not None:
            request.send_header("Content-Type", route.content_type)
        if route.send_length:
            request.send_header("Content-Length", str(len(route.body)))
        for name, value in route.headers.items():
            request.send_header(name, value)
        request.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            request.wfile.write(route.body)

    def __enter__(self) -> ImageServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def serve(routes: dict[str, Route]) -> Iterator[ImageServer]:
    """A started server with these routes (generator for fixtures)."""
    with ImageServer() as server:
        for path, route in routes.items():
            server.add(path, route)
        yield server


def wait_for(predicate: Callable[[], bool], timeout_s: float, interval_s: float = 0.005) -> bool:
    """Poll until predicate() is true; False on timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return predicate()


def noise_jpeg(seed: int, size: tuple[int, int] = (64, 80)) -> bytes:
    """A small distinct JPEG as bytes."""
    rgb = make_test_image(seed, *size)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return np.asarray(buf).tobytes()
