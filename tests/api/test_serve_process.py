"""A real ``mmrag serve`` process on loopback: readiness, 50 concurrent searches, traversal."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest

from mmrag.cli import main as mmrag_main
from retrieval.components import build_components
from retrieval.config import Settings
from tests.api.helpers import ApiData, SocketProxy, build_collection, free_port, tiny_settings
from tests.support.images import write_image_files

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 90.0
QUERIES = [f"a photo of a {word}" for word in
           ("dog", "cat", "bird", "fish", "red car", "beach", "city at night", "forest",
            "mountain", "bowl of soup")]


@dataclass
class Served:
    """The running server and what it serves."""

    base: str
    port: int
    data: ApiData
    process: subprocess.Popen[bytes]
    log: Path


def _env(settings: Settings, config: Path) -> dict[str, str]:
    """The server's environment: MMRAG_* from settings, nothing inherited."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMRAG_")}
    env.update(
        MMRAG_URI=settings.uri,
        MMRAG_COLLECTION=settings.collection,
        MMRAG_MODEL=str(config),
        MMRAG_CHECKPOINT=str(settings.checkpoint),
        MMRAG_PRETRAINED="",
        MMRAG_DEVICE="cpu",
        MMRAG_THUMBNAIL_DIR=str(settings.thumbnail_dir),
        MMRAG_QUERY_CACHE_SIZE="0",  # every query goes through the micro-batcher
        MMRAG_LOG_LEVEL="warning",
        PYTHONUNBUFFERED="1",
    )
    return env


def start_server(
    env: dict[str, str], log: Path, *extra: str
) -> tuple[subprocess.Popen[bytes], str, int]:
    """Spawn ``python -m mmrag serve`` on a free loopback port; wait for /health and /ready."""
    port = free_port()
    with open(log, "wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "mmrag", "serve", "--host", "127.0.0.1", "--port", str(port),
             *extra],
            cwd=REPO, env=env, stdout=sink, stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    with httpx.Client(base_url=base, timeout=5.0, trust_env=False) as probe:
        for path in ("/health", "/ready"):
            while True:
                if process.poll() is not None:
                    pytest.fail(f"mmrag serve exited {process.returncode}:\n{log.read_text()}")
                try:
                    if probe.get(path).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    process.kill()
                    pytest.fail(f"mmrag serve not {path} in time:\n{log.read_text()}")
                time.sleep(0.2)
    return process, base, port


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_files: tuple[Path, Path]
) -> Iterator[Served]:
    """``python -m mmrag serve`` over its own freshly ingested Lite collection."""
    config, _ = tiny_model_files
    data = build_collection(tmp_path_factory.mktemp("served"), *tiny_model_files)
    log = data.root / "serve.log"
    process, base, port = start_server(_env(data.settings, config), log)
    try:
        yield Served(base=base, port=port, data=data, process=process, log=log)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def _hits(response: httpx.Response) -> list[tuple[str, float]]:
    assert response.status_code == 200, response.text
    return [(hit["id"], hit["score"]) for hit in response.json()["hits"]]


def _text_batches(metrics: str) -> float:
    match = re.search(r'^mmrag_embed_batch_size_count\{modality="text"\} (\S+)$', metrics, re.M)
    return float(match.group(1)) if match else 0.0


def test_endpoints_answer_over_loopback(served: Served) -> None:
    with httpx.Client(base_url=served.base, timeout=30.0, trust_env=False) as http:
        assert http.get("/health").json() == {"status": "ok"}
        assert http.get("/ready").json()["status"] == "ready"
        assert http.get("/stats").json()["count"] == 17
        assert "items" in {c["name"] for c in http.get("/collections").json()["collections"]}
        hit = http.post("/search", json={"query": "a dog", "k": 3}).json()["hits"][0]
        image = http.get(hit["image_url"])
        assert image.status_code == 200 and image.headers["content-type"].startswith("image/")
        assert http.get(hit["thumbnail_url"]).headers["content-type"] == "image/jpeg"
        path = served.data.images[2]
        upload = http.post("/search/image", files={"file": (path.name, path.read_bytes())})
        assert _hits(upload)[0][0] == served.data.ids[str(path)]
        bad = http.post("/search", json={"query": "", "k": 3})
        assert bad.status_code == 422 and bad.json()["error"]["message"]
        assert http.get("/docs").status_code == 200
        assert "mmrag_http_requests_total" in http.get("/metrics").text


def test_50_concurrent_searches_match_sequential(served: Served) -> None:
    bodies = [{"query": f"{QUERIES[i % len(QUERIES)]} number {i}", "k": 5, "offset": i % 3}
              for i in range(50)]
    with httpx.Client(base_url=served.base, timeout=60.0, trust_env=False) as http:
        sequential = [_hits(http.post("/search", json=body)) for body in bodies]
        batches_before = _text_batches(http.get("/metrics").text)

    async def all_at_once() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=60)
        async with httpx.AsyncClient(
            base_url=served.base, timeout=60.0, limits=limits, trust_env=False
        ) as http:
            return list(await asyncio.gather(*(http.post("/search", json=b) for b in bodies)))

    started = time.perf_counter()
    concurrent = asyncio.run(all_at_once())
    elapsed = time.perf_counter() - started
    assert all(r.status_code == 200 for r in concurrent), [r.text for r in concurrent][:3]
    for body, seq, response in zip(bodies, sequential, concurrent, strict=True):
        got = _hits(response)
        assert [i for i, _ in got] == [i for i, _ in seq], body
        assert [s for _, s in got] == pytest.approx([s for _, s in seq], abs=1e-5)
    with httpx.Client(base_url=served.base, timeout=30.0, trust_env=False) as http:
        batches = _text_batches(http.get("/metrics").text) - batches_before
    print(f"\n50 concurrent searches in {elapsed:.2f}s, {batches:.0f} model calls")
    assert 50 / 16 <= batches < 50  # shared model calls, at most 16 texts each


def _raw_get(port: int, target: str) -> tuple[int, bytes]:
    """Send one GET with the request target exactly as given; return status and body."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def test_path_traversal_over_the_wire(served: Served) -> None:
    secret = str(served.data.secret)
    relative = "../" * 10 + secret.lstrip("/")
    targets = [
        "/items/../../../../etc/passwd",
        "/items/../../../../etc/passwd/image",
        "/items/..%2F..%2F..%2F..%2Fetc%2Fpasswd/image",
        "/items/%2e%2e/%2e%2e/%2e%2e/etc/passwd/image",
        "/items/%2e%2e%2f%2e%2e%2fetc%2fpasswd/image?size=64",
        "/items/%252e%252e%252fetc%252fpasswd/image",
        f"/items/{relative}/image",
        f"/items/{relative.replace('/', '%2F')}/image",
        f"/items/{secret.replace('/', '%2F')}/image",
        f"/items/{secret}/image",
        "/items//etc/passwd/image",
        "/items/..%5c..%5cetc%5cpasswd/image",
        "/items/..%00/image",
        "/../../../etc/passwd",
        f"/..%2F..%2F{secret.replace('/', '%2F')}",
        "//etc/passwd",
    ]
    for target in targets:
        status, body = _raw_get(served.port, target)
        assert status in (400, 404, 405, 422), (target, status)
        assert b"TOP-SECRET" not in body and b"root:" not in body, target
    item_id = served.data.ids[str(served.data.images[0])]
    status, body = _raw_get(served.port, f"/items/{item_id}/image?path={secret}")
    assert status == 200 and body == served.data.images[0].read_bytes()


def test_sigint_stops_the_server_cleanly(served: Served) -> None:
    from retrieval.stores.milvus_rows import lite_path
    from retrieval.stores.owner_file import owner_path

    owner = owner_path(lite_path(served.data.settings.uri))
    assert owner.exists()  # other commands on the file work through the server (#16.2)
    lite = [p for p in psutil.Process(served.process.pid).children(recursive=True)]
    served.process.send_signal(signal.SIGINT)
    assert served.process.wait(30) == 0, served.log.read_text()
    _, alive = psutil.wait_procs(lite, timeout=15)
    assert not alive, alive
    assert not owner.exists()  # removed on a clean stop


def test_lite_refuses_several_workers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert mmrag_main(["serve", "--uri", str(tmp_path / "x.db"), "--workers", "2"]) == 2
    assert "one process" in capsys.readouterr().err


@pytest.mark.slow
def test_two_workers_against_a_server_uri(
    tmp_path: Path, tiny_model_files: tuple[Path, Path]
) -> None:
    """``--workers 2`` on a server URI (a Lite collection of this process behind a TCP proxy)."""
    from ingest.job import run_ingest
    from ingest.sources import open_source

    config, checkpoint = tiny_model_files
    settings = tiny_settings(tmp_path, config, checkpoint)
    write_image_files(tmp_path / "imgs", 6)
    holder = build_components(settings)
    try:
        run_ingest(holder, open_source(tmp_path / "imgs"))
        sockets = [a for child in psutil.Process().children(recursive=True)
                   if settings.uri in " ".join(child.cmdline())
                   for a in child.cmdline() if a.startswith("unix:")]
        proxy = SocketProxy(sockets[0].removeprefix("unix:"))
        proxy.start()
        try:
            server = settings.model_copy(update={"uri": f"http://127.0.0.1:{proxy.port}"})
            log = tmp_path / "serve.log"
            process, base, _ = start_server(_env(server, config), log, "--workers", "2")
            try:
                workers = psutil.Process(process.pid).children()
                assert len(workers) >= 2
                with httpx.Client(base_url=base, timeout=30.0, trust_env=False) as http:
                    first = _hits(http.post("/search", json={"query": "dog", "k": 6}))
                    assert len(first) == 6
                    for _ in range(6):  # whichever worker answers, the ranking is the same
                        assert _hits(http.post("/search", json={"query": "dog", "k": 6})) == first
                process.send_signal(signal.SIGINT)
                assert process.wait(30) == 0, log.read_text()
            finally:
                if process.poll() is None:
                    process.kill()
        finally:
            proxy.stop()
    finally:
        holder.close()
