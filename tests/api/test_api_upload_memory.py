"""A real ``mmrag serve`` under hostile uploads: bounded memory, no 500, keep-alive kept.

The issue's case (40 uploads of a 49-megapixel PNG at once) runs in
``benchmarks/upload_memory.py``; here 12 uploads of a 16-megapixel PNG (57 KB, 48 MB decoded)
against a 128 MB decoding budget: before the budget they grew the server by ~600 MB.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from benchmarks.upload_memory import big_png, burst, serve_demo

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc for peak RSS")

BUDGET_MB = 128
GROWTH_BOUND_MB = 320  # the budget, the decoded arrays waiting for the model, allocator slack


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, str]]:
    """(pid, base URL) of ``mmrag serve`` with a small decoding budget and a long wait."""
    env = {"MMRAG_DECODE_BUDGET_MB": str(BUDGET_MB), "MMRAG_DECODE_WAIT_S": "300"}
    process, base = serve_demo(tmp_path_factory.mktemp("upload_memory"), env)
    try:
        yield process.pid, base
    finally:
        process.terminate()
        process.wait(30)


def test_concurrent_huge_uploads_stay_within_the_budget(server: tuple[int, str]) -> None:
    pid, base = server
    httpx.post(base + "/search/image", files={"file": ("w.png", big_png(64), "image/png")},
               timeout=60, trust_env=False).raise_for_status()  # warm the model path
    result = burst(pid, base, big_png(4000), uploads=12)
    assert set(result.statuses) <= {200, 413, 503}, result
    assert result.statuses.get(200, 0) >= 1, result
    assert result.growth_mb < GROWTH_BOUND_MB, result


def test_a_deep_filter_keeps_the_connection(server: tuple[int, str]) -> None:
    """The 422 for a deeply nested filter is an ordinary answer: the connection stays open."""
    _, base = server
    files = {"file": ("q.png", big_png(64), "image/png")}
    with httpx.Client(base_url=base, timeout=60, trust_env=False,
                      limits=httpx.Limits(max_connections=1)) as http:
        deep = http.post("/search/image", files=files, data={"filter": "[" * 5000 + "]" * 5000})
        assert deep.status_code == 422, deep.text
        first = deep.extensions["network_stream"].get_extra_info("client_addr")
        after = http.get("/health")
        assert after.status_code == 200
        assert after.extensions["network_stream"].get_extra_info("client_addr") == first
    assert Path(f"/proc/{server[0]}").exists()  # the server is still up
