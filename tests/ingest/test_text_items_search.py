"""Text items found beside images (#18.1), with the shipped mmrag-demo model on Milvus Lite.

The demo model's text tower knows colour and shape words, and its images live in the same space:
an image of a red circle finds the passage "a red circle on a white background". Searched
through the library (``Searcher``), the CLI (``mmrag search --modality``) and the API (``/search``
and ``/search/image`` with ``modality``, ``/items/{id}/image`` of a passage).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from ingest import IngestOptions, run_ingest
from ingest.sources import open_source
from mmrag.cli import main
from retrieval.api import create_app
from retrieval.components import build_components
from retrieval.config import Settings
from retrieval.demo.synthetic import caption_for, render_scene
from retrieval.filters import with_modality
from retrieval.search import Searcher, SearchRequest
from retrieval.types import Modality
from tests.api.helpers import wait_ready

PAIRS = (("red", "circle"), ("blue", "square"), ("green", "triangle"), ("yellow", "star"),
         ("purple", "cross"))


@dataclass(frozen=True)
class Library:
    settings: Settings
    folder: Path


def png(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Library:
    """Two demo images of each pair, and one short text document describing each pair."""
    root = tmp_path_factory.mktemp("text-items")
    folder = root / "library"
    rng = np.random.default_rng(7)
    for colour, shape in PAIRS:
        for copy in range(2):
            png(folder / "images" / f"{colour}-{shape}-{copy}.png",
                render_scene(colour, shape, rng))
        text = f"{caption_for(colour, shape).capitalize()} on a white background.\n"
        (folder / "notes" / f"{colour}-{shape}.txt").parent.mkdir(parents=True, exist_ok=True)
        (folder / "notes" / f"{colour}-{shape}.txt").write_text(text, encoding="utf-8")
    settings = Settings(uri=str(root / "text.db"), collection="library", model="mmrag-demo",
                        pretrained=None, device="cpu", thumbnail_dir=root / "thumbs")
    components = build_components(settings)
    try:
        summary = run_ingest(components, open_source(folder), IngestOptions(workers=1))
    finally:
        components.close()
    assert (summary.ingested, summary.rejected) == (3 * len(PAIRS), 0), summary.rejects
    return Library(settings, folder)


@pytest.fixture(scope="module")
def client(library: Library) -> Iterator[TestClient]:
    with TestClient(create_app(library.settings)) as test_client:
        wait_ready(test_client)
        yield test_client


def test_an_image_finds_the_passage_that_describes_it(library: Library) -> None:
    components = build_components(library.settings)
    try:
        searcher = Searcher(components.embedder, components.store)
        texts = SearchRequest(k=3, expr=with_modality(None, "text"))
        rng = np.random.default_rng(99)  # new renders, not the stored images
        for colour, shape in PAIRS:
            hits = searcher.search_image(render_scene(colour, shape, rng), texts)
            assert {h.modality for h in hits} == {Modality.TEXT}
            assert hits[0].source.endswith(f"{colour}-{shape}.txt"), [h.source for h in hits]
            assert hits[0].metadata["passage"] == 0 and hits[0].metadata["passages"] == 1
        both = searcher.search_text("a red circle", SearchRequest(k=len(PAIRS) * 3))
        assert {h.modality for h in both} == {Modality.IMAGE, Modality.TEXT}
        images = searcher.search_text("a red circle",
                                      SearchRequest(k=4, expr=with_modality(None, "image")))
        assert {h.modality for h in images} == {Modality.IMAGE}
        assert all("red-circle" in h.source for h in images[:2])
    finally:
        components.close()


def test_the_api_filters_by_modality_and_a_passage_has_no_image(
    client: TestClient, library: Library
) -> None:
    found = client.post("/search", json={"query": "a blue square", "k": 3, "modality": "text"})
    assert found.status_code == 200, found.text
    hits = found.json()["hits"]
    assert [h["modality"] for h in hits] == ["text"] * 3
    top = hits[0]
    assert top["caption"] == "A blue square on a white background."
    assert top["metadata"]["document"].endswith("blue-square.txt")
    mixed = client.post("/search", json={"query": "a blue square", "k": 15}).json()["hits"]
    assert {h["modality"] for h in mixed} == {"image", "text"}

    query = png(library.folder.parent / "query.png",
                render_scene("green", "triangle", np.random.default_rng(5)))
    upload = client.post("/search/image", data={"k": "2", "modality": "text"},
                         files={"file": ("q.png", query.read_bytes(), "image/png")})
    assert upload.status_code == 200, upload.text
    assert upload.json()["hits"][0]["source"].endswith("green-triangle.txt")
    assert client.post("/search", json={"query": "x", "modality": "audio"}).status_code == 422

    image = client.get(f"/items/{top['id']}/image")
    assert image.status_code == 415
    assert "is a text passage, not an image" in image.json()["error"]["message"]
    assert client.get(f"/items/{top['id']}/image", params={"size": 256}).status_code == 415
    item = client.get(f"/items/{top['id']}").json()
    assert item["modality"] == "text" and item["caption"] == top["caption"]


def test_cli_search_takes_modality(
    library: Library, capsys: pytest.CaptureFixture[str]
) -> None:
    s = library.settings
    flags = ["--uri", s.uri, "--collection", s.collection, "--model", s.model, "--device", "cpu"]
    for modality in ("text", "image"):
        assert main(["search", "a yellow star", "-k", "3", "--modality", modality, "--json",
                     *flags]) == 0
        hits = json.loads(capsys.readouterr().out)
        assert {h["modality"] for h in hits} == {modality}
    with pytest.raises(SystemExit):
        main(["search", "a yellow star", "--modality", "audio", *flags])
