"""Chat test fixtures: a fake OpenAI server, hits with real image files, a RAG collection."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from retrieval.components import build_components
from retrieval.config import Settings
from retrieval.embedders.base import Embedder
from retrieval.types import Hit
from tests.chat.chat_data import CAPTIONS, LABELS
from tests.chat.fake_openai_server import FakeOpenAI, FakeOpenAIServer
from tests.support.images import write_image_files


@pytest.fixture
def fake_llm() -> Iterator[FakeOpenAI]:
    """A fake OpenAI-compatible server on loopback (key ``sk-test``)."""
    with FakeOpenAIServer() as fake:
        yield fake


@pytest.fixture
def closed_url() -> str:
    """A base URL on a loopback port nothing listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


@pytest.fixture
def image_hits(tmp_path: Path) -> list[Hit]:
    """Four ranked hits whose sources are real JPEG files of 900x700 pixels."""
    files = write_image_files(tmp_path / "hits", 4, ext=".jpg", sizes=((700, 900),))
    return [
        Hit(
            id=f"item{i}",
            score=0.9 - i * 0.1,
            source=str(path),
            caption=CAPTIONS[i],
            metadata={"label": LABELS[i], "year": 2020 + i},
        )
        for i, path in enumerate(files)
    ]


def build_rag_collection(
    root: Path, tiny_model_files: tuple[Path, Path], embedder: Embedder
) -> Settings:
    """Ingest eight captioned images into a fresh Milvus Lite collection; its settings."""
    from ingest import IngestOptions, run_ingest
    from ingest.sources import SourceItem

    config, checkpoint = tiny_model_files
    settings = Settings.model_validate({
        "uri": str(root / "rag.db"),
        "collection": "rag",
        "model": str(config),
        "pretrained": None,
        "checkpoint": checkpoint,
        "device": "cpu",
        "batch_size": 4,
    })
    files = write_image_files(root / "images", len(CAPTIONS), ext=".png")
    items = [
        SourceItem(
            source=str(path.resolve()),
            caption=CAPTIONS[i],
            metadata={"label": LABELS[i], "year": 2015 + i},
        )
        for i, path in enumerate(files)
    ]
    components = build_components(settings)
    components._embedder = embedder
    try:
        summary = run_ingest(components, items, IngestOptions(batch_size=4))
        assert summary.ingested == len(CAPTIONS)
    finally:
        components.close()
    return settings


@pytest.fixture(scope="module")
def rag_settings(
    tmp_path_factory: pytest.TempPathFactory,
    tiny_model_files: tuple[Path, Path],
    tiny_embedder: Embedder,
) -> Settings:
    """Settings of a module-wide Milvus Lite collection of eight captioned images."""
    root = tmp_path_factory.mktemp("rag")
    return build_rag_collection(root, tiny_model_files, tiny_embedder)
