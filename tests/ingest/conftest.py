"""Ingest fixtures: settings on a fresh Milvus Lite file, components with the tiny model."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from retrieval.components import Components, build_components
from retrieval.config import Settings
from retrieval.embedders.base import Embedder
from tests.support.tiny_model import tiny_model_settings


@pytest.fixture
def settings(tmp_path: Path, tiny_model_files: tuple[Path, Path]) -> Settings:
    """Settings for collection 'ingest' in this test's own Lite file, with the tiny model."""
    return tiny_model_settings(tiny_model_files, tmp_path / "ingest.db", "ingest", batch_size=8)


@pytest.fixture
def open_components(
    settings: Settings, tiny_embedder: Embedder
) -> Iterator[Callable[..., Components]]:
    """Factory of components (one collection each) sharing the session's tiny model."""
    opened: list[Components] = []

    def make(collection: str = "ingest") -> Components:
        comps = build_components(settings.model_copy(update={"collection": collection}))
        comps._embedder = tiny_embedder
        opened.append(comps)
        return comps

    yield make
    for comps in opened:
        comps.close()


@pytest.fixture
def components(open_components: Callable[..., Components]) -> Components:
    """Components for collection 'ingest'."""
    return open_components()


@pytest.fixture
def cli_flags(settings: Settings) -> list[str]:
    """Global CLI flags selecting the same Lite file, collection and tiny model."""
    return [
        "--uri", settings.uri, "--collection", settings.collection,
        "--model", settings.model, "--pretrained", "",
        "--checkpoint", str(settings.checkpoint), "--device", "cpu",
    ]
