"""GET /stats while the configured collection is briefly missing, as during ``mmrag reindex``
(its old collection dropped before the follower repointed the default store): the server
waits a moment for the name instead of answering 404 (real Milvus Lite, the tiny model)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from fastapi.testclient import TestClient

from retrieval.api import create_app
from retrieval.embedders.base import Embedder
from retrieval.stores import open_store
from tests.api.helpers import tiny_settings, wait_ready


def test_stats_waits_for_a_configured_name_that_goes_missing_for_a_moment(
    tmp_path: Path, tiny_model_files: tuple[Path, Path], tiny_embedder: Embedder
) -> None:
    config, checkpoint = tiny_model_files
    settings = tiny_settings(tmp_path, config, checkpoint).model_copy(
        update={"collection": "moving"}
    )
    with open_store(settings.uri, "moving") as store:
        store.ensure_collection(tiny_embedder.dim, tiny_embedder.model_id)
        with TestClient(create_app(settings)) as client:
            wait_ready(client)
            assert client.get("/stats").json()["count"] == 0  # the name answered once

            def come_back() -> None:
                time.sleep(0.6)
                store.ensure_collection(tiny_embedder.dim, tiny_embedder.model_id)

            store.drop()
            returner = threading.Thread(target=come_back)
            returner.start()
            try:
                response = client.get("/stats")
            finally:
                returner.join()
            assert response.status_code == 200, response.text
            assert response.json()["collection"] == "moving"
            never_seen = client.get("/stats", params={"collection": "never_there"})
            assert never_seen.status_code == 404  # a name never seen is not waited for
