"""API fixtures: one real Milvus Lite collection (tiny model) shared by the API tests.

It is built once per session (see ``helpers.build_collection``), then served by a TestClient.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from retrieval.api import create_app
from tests.api.helpers import ApiData, build_collection, wait_ready


@pytest.fixture(scope="session")
def api_data(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_files: tuple[Path, Path]
) -> ApiData:
    """The shared, ingested collection (built once per session)."""
    config, checkpoint = tiny_model_files
    return build_collection(tmp_path_factory.mktemp("api"), config, checkpoint)


@pytest.fixture(scope="session")
def client(api_data: ApiData) -> Iterator[TestClient]:
    """A TestClient over the shared collection, model loaded (no API key, private URLs refused)."""
    with TestClient(create_app(api_data.settings)) as test_client:
        wait_ready(test_client)
        yield test_client
