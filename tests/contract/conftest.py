"""Store fixtures: a fresh Milvus Lite file per test, or a fresh collection on the embedded server.

The server (``milvus_server`` in ``tests/conftest.py``) comes from the ``milvus`` PyPI package (a
real standalone binary); it is started once per session, and every test gets its own collection.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from retrieval.errors import StoreError
from retrieval.stores import open_store
from retrieval.stores.base import VectorStore
from tests.contract.helpers import DIM, MODEL, StoreFactory


@pytest.fixture(params=["lite", pytest.param("server", marks=pytest.mark.server)])
def backend(request: pytest.FixtureRequest) -> str:
    """Which Milvus the test runs against."""
    return str(request.param)


@pytest.fixture
def store_factory(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[StoreFactory]:
    """Open stores on this test's backend: one .db per test (Lite) or unique collections."""
    opened: list[VectorStore] = []
    uri = str(tmp_path / "lite" / "store.db")
    if backend == "server":
        uri = request.getfixturevalue("milvus_server").uri
    default_collection = f"t_{uuid.uuid4().hex[:12]}"

    def factory(collection: str | None = None, *, index_type: str = "auto") -> VectorStore:
        store = open_store(uri, collection or default_collection, index_type=index_type)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        if backend == "server":
            with contextlib.suppress(StoreError):  # best-effort cleanup on a shared server
                store.drop()
        store.close()


@pytest.fixture
def store(store_factory: StoreFactory) -> VectorStore:
    """A store whose collection exists for MODEL at DIM."""
    made = store_factory()
    made.ensure_collection(DIM, MODEL)
    return made
