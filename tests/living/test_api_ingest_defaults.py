"""POST /ingest with the defaults (no ``MMRAG_INGEST_ROOTS``, private URLs not allowed): every
server path is a 403 naming the setting, and a loopback URL is a fetch reject that writes
nothing (in-process app over a Lite file that does not exist yet)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from retrieval.api import create_app
from retrieval.config import Settings
from tests.living.test_api_ingest import follow


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, tiny_model_files: tuple[Path, Path]
           ) -> Iterator[TestClient]:
    config, checkpoint = tiny_model_files
    root = tmp_path_factory.mktemp("ingest-defaults")
    settings = Settings(uri=str(root / "defaults.db"), collection="defaults", model=str(config),
                        checkpoint=checkpoint, pretrained=None, device="cpu")
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_no_server_path_without_ingest_roots(client: TestClient, tmp_path: Path) -> None:
    refused = client.post("/ingest", json={"paths": [str(tmp_path)]})
    assert refused.status_code == 403
    message = refused.json()["error"]["message"]
    assert "MMRAG_INGEST_ROOTS" in message and "upload the files" in message
    assert client.get("/ingest").json()["jobs"] == []


def test_loopback_urls_are_rejects_without_private_urls(client: TestClient) -> None:
    started = client.post("/ingest", json={"urls": ["http://127.0.0.1:9/x.png"]})
    assert started.status_code == 202
    job = follow(client, started.json()["id"])[-1][1]
    [reject] = job["rejects"]
    assert reject["stage"] == "fetch" and "refusing to fetch" in reject["reason"]
    assert job["counts"] == {"ingested": 0, "duplicates": 0, "rejected": 1, "skipped": 0}
