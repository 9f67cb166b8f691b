"""Honest readiness: a missing collection or a corrupted Lite file is not ready; HEAD answers."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from retrieval.api import create_app
from retrieval.errors import StoreUnavailableError
from retrieval.stores.milvus import MilvusStore
from tests.api.helpers import ApiData, error_of


def _ready_after_loading(client: TestClient) -> object:
    """/ready once the model has finished loading (whatever else it says)."""
    deadline = time.monotonic() + 60
    while "still loading" in (response := client.get("/ready")).text:
        assert time.monotonic() < deadline, response.text
        time.sleep(0.05)
    return response


def test_a_deleted_database_is_not_ready(api_data: ApiData, tmp_path: Path) -> None:
    """The .db file is gone (Lite starts an empty one): /ready is 503 and says what to do."""
    settings = api_data.settings_with(uri=str(tmp_path / "deleted.db"))
    with TestClient(create_app(settings)) as client:
        ready = _ready_after_loading(client)
        assert ready.status_code == 503, ready.text  # type: ignore[attr-defined]
        error = error_of(ready)
        assert error["type"] == "not_ready"
        assert "collection 'items' does not exist" in error["message"]
        assert "mmrag ingest" in error["message"]
        assert error["details"] == {"collection": "items", "collection_exists": False}
        search = client.post("/search", json={"query": "a dog"})
        assert search.status_code == 404 and error_of(search)["type"] == "collection_not_found"
        assert client.get("/health").status_code == 200


def test_a_corrupted_database_says_so(api_data: ApiData, tmp_path: Path) -> None:
    db = tmp_path / "corrupt.db"
    db.write_bytes(b"\x00garbage, not a database\n" * 200)
    with pytest.raises(StoreUnavailableError, match="not a Milvus Lite database") as caught:
        MilvusStore(str(db), "items")
    assert "another process" not in str(caught.value)
    with TestClient(create_app(api_data.settings_with(uri=str(db)))) as client:
        ready = _ready_after_loading(client)
        assert ready.status_code == 503  # type: ignore[attr-defined]
        message = error_of(ready)["message"]
        assert "not a Milvus Lite database" in message and "another process" not in message


def test_head_answers_on_health_and_the_page(client: TestClient) -> None:
    for path in ("/health", "/", "/static/app.js"):
        head = client.head(path)
        get = client.get(path)
        assert head.status_code == 200 == get.status_code, (path, head.text)
        assert head.content == b""
        assert head.headers["content-type"] == get.headers["content-type"]


def test_ready_when_the_collection_exists(client: TestClient) -> None:
    ready = client.get("/ready")
    assert ready.status_code == 200 and ready.json()["collection_exists"] is True
