"""Fuzzing fixtures: a small demo collection (the shipped ``mmrag-demo`` model) in Milvus Lite."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from mmrag.cli import main as mmrag_main
from retrieval.demo.synthetic import write_dataset
from tests.api.helpers import free_port

START_TIMEOUT_S = 90.0

GALLERY_SIZE = 40  # one image of each colour-shape combination
GALLERY_SEED = 2_020
COLLECTION = "fuzz_demo"


@dataclass(frozen=True)
class DemoData:
    """Where the ingested demo collection lives."""

    root: Path
    uri: str
    collection: str


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory: pytest.TempPathFactory) -> DemoData:
    """40 seeded demo images ingested with ``mmrag ingest`` and the bundled demo model."""
    root = tmp_path_factory.mktemp("fuzz")
    manifest = write_dataset(root / "gallery", GALLERY_SIZE, seed=GALLERY_SEED)
    uri = str(root / "fuzz.db")
    argv = ["ingest", str(manifest), "--uri", uri, "--collection", COLLECTION,
            "--model", "mmrag-demo", "--device", "cpu", "--quiet"]
    assert mmrag_main(argv) == 0
    return DemoData(root=root, uri=uri, collection=COLLECTION)


def start_serve(
    env: dict[str, str], log: Path, api_key: str | None
) -> tuple[subprocess.Popen[bytes], str]:
    """Spawn ``python -m mmrag serve`` on a free loopback port; wait until /ready is 200."""
    port = free_port()
    with open(log, "wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "mmrag", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env, stdout=sink, stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    headers = {"X-API-Key": api_key} if api_key else {}
    deadline = time.monotonic() + START_TIMEOUT_S
    with httpx.Client(base_url=base, timeout=5.0, trust_env=False, headers=headers) as probe:
        while True:
            if process.poll() is not None:
                pytest.fail(f"mmrag serve exited {process.returncode}:\n{log.read_text()}")
            try:
                if probe.get("/ready").status_code == 200:
                    return process, base
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"mmrag serve was not ready in time:\n{log.read_text()}")
            time.sleep(0.2)
