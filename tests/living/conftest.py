"""Living-collection fixtures: a library folder of small images, settings and CLI flags for a
fresh Milvus Lite file with the tiny model, and a store reader for after a command ran."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import pytest

from retrieval.config import Settings
from retrieval.stores import open_store
from retrieval.stores.base import VectorStore
from retrieval.types import Record
from tests.support.images import make_test_image
from tests.support.tiny_model import tiny_model_settings

SIDE = 24  # small images: decoding and the tiny model stay cheap


def write_png(path: Path, index: int, side: int = SIDE) -> Path:
    """A distinct small PNG (image ``index``) at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, data = cv2.imencode(".png", cv2.cvtColor(make_test_image(index, side, side),
                                                 cv2.COLOR_RGB2BGR))
    assert ok
    path.write_bytes(data.tobytes())
    return path


@pytest.fixture
def settings(tmp_path: Path, tiny_model_files: tuple[Path, Path]) -> Settings:
    """Collection 'living' in this test's own Lite file, with the tiny model."""
    return tiny_model_settings(tiny_model_files, tmp_path / "db" / "living.db", "living",
                               batch_size=16)


@pytest.fixture
def cli_flags(settings: Settings) -> list[str]:
    """Global CLI flags selecting the same Lite file, collection and tiny model."""
    return [
        "--uri", settings.uri, "--collection", settings.collection,
        "--model", settings.model, "--pretrained", "",
        "--checkpoint", str(settings.checkpoint), "--device", "cpu",
    ]


@pytest.fixture
def read_rows(settings: Settings) -> Iterator[Callable[[], dict[str, Record]]]:
    """Read every stored row (with vectors) by id. The store opens on the first read and stays
    open for the test, so commands run in this process afterwards share its Milvus Lite server
    instead of starting their own (a command in another process needs the file unopened)."""
    opened: list[VectorStore] = []

    def read() -> dict[str, Record]:
        if not opened:
            opened.append(open_store(settings.uri, settings.collection))
        store = opened[0]
        store.refresh()
        if not store.exists():
            return {}
        return {r.id: r for batch in store.iterate(500) for r in batch}

    yield read
    for store in opened:
        store.close()
