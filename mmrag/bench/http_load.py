"""``mmrag serve`` in a child process, driven by keep-alive HTTP clients: 1 client, then N."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmrag.bench.measure import PeakRss, seconds
from mmrag.bench.models import checkpoint_for
from mmrag.bench.sizes import Sizes
from mmrag.bench.workload import unique_queries, warm_texts


class Client:
    """A keep-alive HTTP client that sends headers and body in one write (as browsers do).

    httpx writes them separately, and on loopback Nagle + delayed ACK can then add ~40 ms to
    a request, which would be measuring the client, not the server.
    """

    def __init__(self, port: int, timeout: float = 120.0) -> None:
        import http.client

        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)

    def get(self, path: str) -> int:
        self.conn.request("GET", path)
        resp = self.conn.getresponse()
        resp.read()
        return resp.status

    def search(self, query: str) -> float:
        """POST /search; returns the server's own took_ms."""
        body = json.dumps({"query": query, "k": 10})
        self.conn.request(
            "POST", "/search", body=body, headers={"Content-Type": "application/json"}
        )
        resp = self.conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"/search answered {resp.status}: {data[:300]!r}")
        return float(json.loads(data).get("took_ms", 0.0))

    def close(self) -> None:
        self.conn.close()


@dataclass
class Served:
    """What one server run measured: 1-client and N-client latencies, QPS, peak RSS."""

    one_ms: np.ndarray
    took_ms: np.ndarray
    qps: float
    many_ms: np.ndarray
    rss_mib: float


def serve_and_load(
    model: str, db: Path | str, sizes: Sizes, *, one_client: bool = True,
    env_extra: dict | None = None,
) -> Served:
    """Start ``mmrag serve`` on ``db``; time 1-client queries, then N concurrent clients."""
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mmrag", "serve", "--port", str(port), "--log-level", "warning"],
        env=_server_env(model, db, sizes, env_extra or {}),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        with PeakRss(server.pid, every_s=0.2) as rss:
            _wait_ready(server, port)
            client = Client(port)
            for text in warm_texts(seed=7):  # same warm-up as the bare path got
                client.search(text)
            one, took = [], []
            for query in unique_queries(sizes.queries if one_client else 0, seed=31):
                started = time.perf_counter()
                took.append(client.search(query))
                one.append(time.perf_counter() - started)
            client.close()
            qps, many_ms = _concurrent_load(port, sizes)
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
    return Served(np.array(one) * 1e3, np.array(took), qps, many_ms, rss.mib)


def _server_env(model: str, db: Path | str, sizes: Sizes, extra: dict[str, str]) -> dict[str, str]:
    """The server's environment: this one, serving collection "bench" of ``db`` with
    ``model``'s random checkpoint on CPU, at the bench's threads and precision."""
    env = {
        **os.environ,
        "MMRAG_URI": str(db),
        "MMRAG_COLLECTION": "bench",
        "MMRAG_MODEL": model,
        "MMRAG_CHECKPOINT": str(checkpoint_for(model)),
        "MMRAG_DEVICE": "cpu",
        "MMRAG_LOG_LEVEL": "warning",
        **extra,
    }
    env.pop("MMRAG_PRETRAINED", None)
    if sizes.torch_threads:
        env["MMRAG_TORCH_THREADS"] = str(sizes.torch_threads)
    env["MMRAG_PRECISION"] = sizes.precision
    return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(server: subprocess.Popen, port: int, timeout_s: float = 180.0) -> None:
    deadline = time.time() + timeout_s
    while True:
        client = Client(port)
        try:
            if client.get("/ready") == 200:
                return
        except OSError:
            pass
        finally:
            client.close()
        if server.poll() is not None or time.time() > deadline:
            err = server.stderr.read().decode()[-2000:] if server.stderr else ""
            raise RuntimeError(f"server did not become ready: {err}")
        time.sleep(0.5)


def _concurrent_load(port: int, sizes: Sizes) -> tuple[float, np.ndarray]:
    """Queries/s and per-query ms of ``sizes.clients`` keep-alive clients, after a warm-up."""
    lat: list[float] = []
    lock = threading.Lock()
    n = sizes.clients

    def worker(chunk: list[str]) -> None:
        c = Client(port)
        try:
            for q in chunk:
                t0 = time.perf_counter()
                c.search(q)
                with lock:
                    lat.append(time.perf_counter() - t0)
        finally:
            c.close()

    def load(queries: list[str]) -> None:
        with ThreadPoolExecutor(n) as pool:
            list(pool.map(worker, [queries[i::n] for i in range(n)]))

    load(unique_queries(n * 2, seed=43))  # warm the batch shapes
    lat.clear()
    many_q = unique_queries(sizes.concurrent_queries, seed=41)
    wall = seconds(lambda: load(many_q))
    return len(many_q) / wall, np.array(lat) * 1e3
