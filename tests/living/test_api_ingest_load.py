"""16 clients searching while an API ingest of 500 images runs (#16.7): no request fails and the
final count is exact. The same server (no ``MMRAG_INGEST_ROOTS``, private URLs not allowed)
refuses every server path and fetches no loopback URL."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.living.test_api_ingest import WAIT_S, follow, png_bytes, start_server, stop_server

CLIENTS = 16
IMAGES = 500
SEED = 4


@pytest.fixture(scope="module")
def load_server(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_files: tuple[Path, Path]
) -> Iterator[str]:
    """``mmrag serve`` on a new Lite file, without an API key, roots or private URLs."""
    config, checkpoint = tiny_model_files
    root = tmp_path_factory.mktemp("living-load")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMRAG_")}
    env.update(
        MMRAG_URI=str(root / "load.db"), MMRAG_COLLECTION="load", MMRAG_MODEL=str(config),
        MMRAG_CHECKPOINT=str(checkpoint), MMRAG_PRETRAINED="", MMRAG_DEVICE="cpu",
        MMRAG_QUERY_CACHE_SIZE="0", MMRAG_LOG_LEVEL="warning", PYTHONUNBUFFERED="1",
    )
    process, base = start_server(env, root / "serve.log")
    try:
        yield base
    finally:
        stop_server(process)


def _client(base: str) -> httpx.Client:
    return httpx.Client(base_url=base, timeout=WAIT_S, trust_env=False)


def test_16_clients_search_while_500_images_are_ingested(load_server: str) -> None:
    with _client(load_server) as client:
        seed = [("files", (f"seed{i}.png", png_bytes(2000 + i), "image/png")) for i in range(SEED)]
        seeded = client.post("/ingest", files=seed).json()
        assert follow(client, seeded["id"])[-1][1]["counts"]["ingested"] == SEED

        files = [("files", (f"p{i:03d}.png", png_bytes(1000 + i), "image/png"))
                 for i in range(IMAGES)]
        job = client.post("/ingest", files=files)
        assert job.status_code == 202, job.text
        job_id = job.json()["id"]

        done = threading.Event()
        failures: list[str] = []
        answered = [0] * CLIENTS

        def search(index: int) -> None:
            with _client(load_server) as own:
                turn = 0
                while not done.is_set():
                    turn += 1
                    try:
                        if turn % 8 == 0:
                            response = own.get(f"/ingest/{job_id}")
                        else:
                            response = own.post("/search", json={
                                "query": f"a photo number {index} {turn}", "k": 10})
                        if response.status_code != 200:
                            failures.append(f"{response.status_code} {response.text[:200]}")
                    except httpx.HTTPError as exc:
                        failures.append(f"{type(exc).__name__}: {exc}")
                    answered[index] += 1

        threads = [threading.Thread(target=search, args=(i,)) for i in range(CLIENTS)]
        for thread in threads:
            thread.start()
        try:
            finished = follow(client, job_id)[-1][1]
        finally:
            done.set()
            for thread in threads:
                thread.join(WAIT_S)
        assert failures == []
        assert all(answered), answered  # every client was answered while the job ran
        assert finished["state"] == "done", finished
        assert finished["counts"] == {"ingested": IMAGES, "duplicates": 0, "rejected": 0,
                                      "skipped": 0}
        assert client.get("/stats").json()["count"] == SEED + IMAGES
        hits = client.post("/search", json={"query": "a photo", "k": 1000}).json()["hits"]
        assert len(hits) == SEED + IMAGES == len({hit["id"] for hit in hits})


def test_no_server_path_without_ingest_roots(load_server: str) -> None:
    with _client(load_server) as client:
        refused = client.post("/ingest", json={"paths": [str(Path.cwd())]})
        assert refused.status_code == 403
        message = refused.json()["error"]["message"]
        assert "MMRAG_INGEST_ROOTS" in message and "upload the files" in message


def test_loopback_urls_are_rejects_without_private_urls(load_server: str) -> None:
    with _client(load_server) as client:
        before = client.get("/stats").json()["count"]
        started = client.post("/ingest", json={"urls": ["http://127.0.0.1:9/x.png"]}).json()
        job = follow(client, started["id"])[-1][1]
        [reject] = job["rejects"]
        assert reject["stage"] == "fetch" and "refusing to fetch" in reject["reason"]
        assert job["counts"] == {"ingested": 0, "duplicates": 0, "rejected": 1, "skipped": 0}
        assert client.get("/stats").json()["count"] == before
