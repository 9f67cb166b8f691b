"""Shared fixtures: a tiny seeded open_clip model, its embedder, image files on disk, and the
embedded Milvus server (started lazily, once per session, only when a test asks for it).

Nothing here downloads: the model is random-initialised with a fixed seed and saved locally.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from retrieval.embedders.base import Embedder
from tests.support.images import DEFAULT_SIZES, write_image_files
from tests.support.tiny_model import TINY_MODEL_NAME, make_tiny_checkpoint

if TYPE_CHECKING:
    from tests.support.milvus_server import EmbeddedServer

ImageFileFactory = Callable[..., list[Path]]


@pytest.fixture(scope="session")
def tiny_model_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(config JSON, fp32 safetensors checkpoint) of ``mmrag-test-tiny`` (32-d, 64-px input)."""
    return make_tiny_checkpoint(tmp_path_factory.mktemp("tiny_model"))


@pytest.fixture(scope="session")
def tiny_embedder(tiny_model_files: tuple[Path, Path]) -> Embedder:
    """The tiny model as users load theirs: config registered, then checkpoint= (CPU, fp32).

    fp32 because the exactness tests compare with open_clip's own fp32 path; settings-built
    embedders (ingest, API) use MMRAG_PRECISION's default (auto: bf16 where the CPU is faster).
    """
    from retrieval.embedders import add_model_config, create_embedder

    config, checkpoint = tiny_model_files
    add_model_config(config)
    return create_embedder(
        TINY_MODEL_NAME, checkpoint=checkpoint, device="cpu", batch_size=4, precision="fp32"
    )


@pytest.fixture
def make_image_files(tmp_path: Path) -> ImageFileFactory:
    """Factory writing distinct real image files with OpenCV under this test's tmp_path.

    Call as ``make_image_files(count, ext=".jpg", sizes=((h, w), ...), start=0, subdir="images")``;
    image ``i`` is ``tests.support.images.make_test_image(i, h, w)`` (noise, gradient, shapes).
    """

    def make(
        count: int,
        *,
        ext: str = ".jpg",
        sizes: Sequence[tuple[int, int]] = DEFAULT_SIZES,
        start: int = 0,
        subdir: str = "images",
    ) -> list[Path]:
        return write_image_files(tmp_path / subdir, count, ext=ext, sizes=sizes, start=start)

    return make


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    """One embedded Milvus 2.3.5 standalone for the whole session (skips if it cannot run)."""
    milvus = pytest.importorskip("milvus", reason="the 'milvus' test package is not installed")
    from tests.support.milvus_server import ServerFailed, ServerUnavailable, run_embedded_server

    data_dir = tmp_path_factory.mktemp("milvus_server")
    try:
        with run_embedded_server(milvus, data_dir) as server:
            yield server
    except ServerUnavailable as exc:
        pytest.skip(f"embedded Milvus server unavailable: {exc}")
    except ServerFailed as exc:
        pytest.fail(str(exc))
    shutil.rmtree(data_dir, ignore_errors=True)  # kept above when the server failed


@pytest.fixture
def private_lite_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A HOME of this test's own, for tests that start Milvus Lite through plain pymilvus.

    Plain Lite 2.5.1 deletes and recreates ``$HOME/.cache/milvus`` in every process, so one
    started beside another test worker's can break it (mmrag's own stores avoid that:
    ``retrieval/stores/lite_server.py``); the test's Lite processes inherit this HOME.
    """
    home = tmp_path / "lite-home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home
