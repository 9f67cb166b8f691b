"""Semantic end-to-end fixtures: a seeded demo gallery, ingested by the real job, served by the API.

The model is the shipped ``mmrag-demo`` (``retrieval/demo/assets``). ``MMRAG_TEST_DEMO_WEIGHTS``
may name other weights of the same model, e.g. a candidate checkpoint being trained.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from mmrag.cli import main
from retrieval.api import create_app
from retrieval.config import Settings
from retrieval.demo.synthetic import write_dataset
from retrieval.embedders import create_embedder_from_settings
from retrieval.embedders.base import Embedder
from retrieval.stores import open_store
from retrieval.stores.base import VectorStore
from tests.api.helpers import wait_ready

GALLERY_SIZE = 400  # 10 images of each of the 40 colour-shape combinations
GALLERY_SEED = 31_337
REAL = "real"
WEIGHTS_ENV = "MMRAG_TEST_DEMO_WEIGHTS"


@dataclass(frozen=True)
class Gallery:
    """The generated images, their manifest, and the settings every collection shares."""

    root: Path
    manifest: Path
    settings: Settings

    def ingest(self, collection: str) -> None:
        """Ingest the manifest into a collection with ``mmrag ingest`` (the real job)."""
        s = self.settings
        argv = ["ingest", str(self.manifest), "--uri", s.uri, "--collection", collection,
                "--model", s.model, "--device", s.device, "--quiet"]
        if s.checkpoint is not None:
            argv += ["--checkpoint", str(s.checkpoint)]
        assert main(argv) == 0

    def store(self, collection: str) -> VectorStore:
        """An open store on one of the gallery's collections (close it after use)."""
        return open_store(self.settings.uri, collection)


@pytest.fixture(scope="session")
def gallery(tmp_path_factory: pytest.TempPathFactory) -> Gallery:
    """400 seeded demo images and a manifest (path, caption, colour, shape), ingested as 'real'."""
    root = tmp_path_factory.mktemp("semantic")
    manifest = write_dataset(root / "gallery", GALLERY_SIZE, seed=GALLERY_SEED)
    override = os.environ.get(WEIGHTS_ENV)
    settings = Settings(
        uri=str(root / "semantic.db"),
        collection=REAL,
        model="mmrag-demo",
        pretrained=None,
        checkpoint=Path(override) if override else None,
        device="cpu",
        batch_size=32,
        thumbnail_dir=root / "thumbs",
        query_cache_size=0,  # every query goes through the (possibly planted) model path
    )
    built = Gallery(root, manifest, settings)
    built.ingest(REAL)
    return built


@pytest.fixture(scope="session")
def demo_embedder(gallery: Gallery) -> Embedder:
    """The demo model, loaded as the system loads it."""
    return create_embedder_from_settings(gallery.settings)


@pytest.fixture(scope="session")
def client(gallery: Gallery) -> Iterator[TestClient]:
    """The search API over the gallery's database (default collection 'real')."""
    with TestClient(create_app(gallery.settings)) as test_client:
        wait_ready(test_client)
        yield test_client


@pytest.fixture
def real_store(gallery: Gallery) -> Iterator[VectorStore]:
    """The 'real' collection, opened directly."""
    store = gallery.store(REAL)
    yield store
    store.close()
