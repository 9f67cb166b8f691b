"""POST /ingest on a Milvus server (the embedded 2.3 standalone): uploads are ingested through
the same job, searchable at once, and a second upload of the same files adds nothing (#16.7:
the same flows against a server)."""

from __future__ import annotations

import uuid
from pathlib import Path

import cv2
import pytest
from fastapi.testclient import TestClient

from retrieval.api import create_app
from retrieval.config import Settings
from retrieval.stores.milvus import MilvusStore
from tests.living.test_api_ingest import run
from tests.support.images import make_test_image
from tests.support.milvus_server import EmbeddedServer

pytestmark = pytest.mark.server


def test_uploads_ingest_into_a_server_collection_once(
    milvus_server: EmbeddedServer, tmp_path: Path, tiny_model_files: tuple[Path, Path]
) -> None:
    config, checkpoint = tiny_model_files
    name = f"uploads_{uuid.uuid4().hex[:10]}"
    settings = Settings(uri=milvus_server.uri, collection=name, model=str(config),
                        checkpoint=checkpoint, pretrained=None, device="cpu",
                        thumbnail_dir=tmp_path / "thumbs", upload_dir=tmp_path / "uploads")
    images = [cv2.imencode(".png", make_test_image(300 + i, 32, 40))[1].tobytes()
              for i in range(5)]
    files = [("files", (f"p{i}.png", data, "image/png")) for i, data in enumerate(images)]
    try:
        with TestClient(create_app(settings)) as client:
            first = run(client, files=files)
            assert first["state"] == "done", first
            assert first["counts"] == {"ingested": 5, "duplicates": 0, "rejected": 0,
                                       "skipped": 0}
            hits = client.post("/search", json={"query": "x", "k": 10, "mode": "vector"})
            assert hits.status_code == 200, hits.text
            assert len(hits.json()["hits"]) == 5
            again = run(client, files=files)
            assert again["counts"]["ingested"] == 0 and again["counts"]["duplicates"] == 5
            assert client.get("/stats").json()["count"] == 5
    finally:
        with MilvusStore(milvus_server.uri, name) as store:
            store.drop()
