"""Fixtures of the notebook-shaped tests: the notebooks' CSV of images, the tiny model under
its own name, cached ViT-B-16 weights for towhee's ``clip_vit_base_patch16``, and a Milvus
connection as the notebooks make it (``host``/``port`` on the embedded server, ``uri`` on Lite).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.towhee.notebook_data import cache_open_clip_weights, write_image_csv

IMAGES = 8


@pytest.fixture(autouse=True)
def quiet_orm_warnings() -> Iterator[None]:
    """The notebooks use pymilvus's ORM, which pymilvus 3 marks deprecated on every call."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*ORM-style PyMilvus API.*")
        yield


@pytest.fixture(scope="session")
def notebook_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding ``reverse_image_search.csv`` (id,path,label) and its JPEG files."""
    folder = tmp_path_factory.mktemp("notebook")
    write_image_csv(folder, IMAGES)
    return folder


@pytest.fixture(scope="session")
def vit_b16_hf_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An HF_HOME whose cache holds (random) weights of towhee's clip_vit_base_patch16."""
    home = tmp_path_factory.mktemp("hf_home")
    cache_open_clip_weights(home, "ViT-B-16-quickgelu", "openai")
    return home


@dataclass(frozen=True)
class Connection:
    """How the notebooks' code reaches Milvus: towhee's keyword arguments and pymilvus's."""

    kind: str
    op_args: dict[str, Any]  # for ops.ann_insert/ann_search.milvus_client
    connect_args: dict[str, Any]  # for pymilvus connections.connect

    @property
    def uri(self) -> str:
        """The address as mmrag's uri= takes it."""
        if "uri" in self.connect_args:
            return str(self.connect_args["uri"])
        return f"http://{self.connect_args['host']}:{self.connect_args['port']}"


@pytest.fixture(params=["lite", "server"])
def connection(request: pytest.FixtureRequest, tmp_path: Path) -> Connection:
    """Milvus Lite by ``uri=``, or the embedded server by ``host=``/``port=`` as strings."""
    if request.param == "lite":
        uri = str(tmp_path / "notebook.db")
        return Connection("lite", {"uri": uri}, {"uri": uri})
    server = request.getfixturevalue("milvus_server")
    host, port = server.uri.removeprefix("http://").split(":")
    return Connection("server", {"host": host, "port": port}, {"host": host, "port": port})


@pytest.fixture
def orm(connection: Connection) -> Iterator[Any]:
    """pymilvus's ORM connected as the notebooks connect (the 'default' alias)."""
    from pymilvus import connections

    connections.connect(alias="default", **connection.connect_args)
    yield connections
    connections.disconnect("default")
