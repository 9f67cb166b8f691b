"""Several API workers on one collection of a real Milvus server (the embedded standalone)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from retrieval.stores.milvus import MilvusStore
from tests.api.helpers import free_port
from tests.contract.helpers import EmbeddedServer
from tests.scale.helpers import ingest_folder, tiny_settings
from tests.support.images import write_image_files

REPO = Path(__file__).resolve().parents[2]
QUERIES = ("a red circle", "a blue square", "stripes")


def _hits(http: httpx.Client, query: str) -> list[str]:
    response = http.post("/search", json={"query": query, "k": 5})
    assert response.status_code == 200, response.text
    return [hit["id"] for hit in response.json()["hits"]]


def _workers(process: subprocess.Popen[bytes], count: int) -> list[psutil.Process]:
    """The uvicorn worker processes (spawned children running mmrag), once all are up."""
    deadline = time.monotonic() + 60
    while True:
        children = [c for c in psutil.Process(process.pid).children()
                    if "multiprocessing" in " ".join(c.cmdline())
                    and "resource_tracker" not in " ".join(c.cmdline())]
        if len(children) >= count:
            return children
        assert time.monotonic() < deadline, "workers did not start"
        time.sleep(0.2)


def _milvus_peers(worker: psutil.Process, port: int) -> int:
    """Established TCP connections of a worker to the Milvus port."""
    return sum(1 for c in worker.net_connections(kind="tcp")
               if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED)


@pytest.mark.server
@pytest.mark.slow
def test_two_workers_share_one_server_collection(
    tmp_path: Path, milvus_server: EmbeddedServer, tiny_model_files: tuple[Path, Path]
) -> None:
    config, checkpoint = tiny_model_files
    name = f"workers_{time.monotonic_ns()}"
    settings = tiny_settings(milvus_server.uri, name, config, checkpoint)
    write_image_files(tmp_path / "images", 8)
    assert ingest_folder(settings, tmp_path / "images").ingested == 8
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMRAG_")}
    env.update(MMRAG_URI=milvus_server.uri, MMRAG_COLLECTION=name, MMRAG_MODEL=str(config),
               MMRAG_CHECKPOINT=str(checkpoint), MMRAG_PRETRAINED="", MMRAG_DEVICE="cpu",
               MMRAG_LOG_LEVEL="warning", PYTHONUNBUFFERED="1")
    port = free_port()
    log = tmp_path / "serve.log"
    with open(log, "wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "mmrag", "serve", "--host", "127.0.0.1", "--port", str(port),
             "--workers", "2"],
            cwd=REPO, env=env, stdout=sink, stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    fresh = httpx.Limits(max_keepalive_connections=0)  # one connection per request
    try:
        workers = _workers(process, 2)
        with httpx.Client(base_url=base, timeout=10.0, trust_env=False, limits=fresh) as http:
            deadline = time.monotonic() + 90
            ready = 0
            while ready < 6:  # both workers must have loaded the model: several in a row
                assert process.poll() is None, log.read_text()
                try:
                    ready = ready + 1 if http.get("/ready").status_code == 200 else 0
                except httpx.TransportError:
                    ready = 0
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
            expected = {q: _hits(http, q) for q in QUERIES}
            milvus_port = int(milvus_server.uri.rsplit(":", 1)[1])
            for alone in workers:  # each worker alone answers the same searches
                others = [w for w in workers if w.pid != alone.pid]
                for other in others:
                    other.send_signal(signal.SIGSTOP)
                try:
                    for query in QUERIES:
                        assert _hits(http, query) == expected[query]
                    assert http.get("/stats").json()["count"] == 8
                finally:
                    for other in others:
                        other.send_signal(signal.SIGCONT)
                assert _milvus_peers(alone, milvus_port) >= 1  # its own Milvus connection
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        with MilvusStore(milvus_server.uri, name) as store:
            store.drop()
