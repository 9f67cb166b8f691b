"""The API's search modes on a real Milvus Lite file: keyword, hybrid (default) and vector,
fusion options, and the 422s for input that cannot run (a collection without the text index
among them, with the command that adds it)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from mmrag.cli import main
from retrieval.api import create_app
from retrieval.config import Settings
from retrieval.embedders.base import Embedder
from retrieval.model_spec import spec_from_settings
from retrieval.stores.milvus import MilvusStore
from retrieval.types import Record
from tests.api.helpers import tiny_settings, wait_ready
from tests.search.test_keyword_store_lite import _create_without_text_index

CAPTIONS = ("Aurora lamp, item R-4821", "Zephyr chair, item B-1234", "Nimbus vase, item K-9992",
            "a red circle on grey", "a blue square on grey", "Orion clock, item Q-5555")


@pytest.fixture(scope="module")
def settings(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_files: tuple[Path, Path]
) -> Settings:
    root = tmp_path_factory.mktemp("hybrid_api")
    return tiny_settings(root, *tiny_model_files).model_copy(update={"collection": "shop"})


@pytest.fixture(scope="module")
def client(settings: Settings, tiny_embedder: Embedder) -> Iterator[TestClient]:
    vectors = tiny_embedder.embed_texts(list(CAPTIONS))
    rows = [Record(id=f"p{i}", vector=v, source=f"/shop/p{i}.png", caption=c,
                   metadata={"shelf": "north" if i < 3 else "south"},
                   model_id=tiny_embedder.model_id)
            for i, (c, v) in enumerate(zip(CAPTIONS, vectors, strict=True))]
    spec = spec_from_settings(settings)
    with MilvusStore(settings.uri, "shop") as shop:
        shop.ensure_collection(tiny_embedder.dim, tiny_embedder.model_id, spec=spec)
        shop.add(rows)
        shop.flush()
    with MilvusStore(settings.uri, "legacy") as legacy, pytest.MonkeyPatch.context() as patch:
        patch.setattr(MilvusStore, "_create", _create_without_text_index)
        legacy.ensure_collection(tiny_embedder.dim, tiny_embedder.model_id, spec=spec)
        legacy.add(rows)
        legacy.flush()
    with TestClient(create_app(settings)) as test_client:
        wait_ready(test_client)
        yield test_client


def search(client: TestClient, query: str, **body: object) -> dict:
    response = client.post("/search", json={"query": query, **body})
    assert response.status_code == 200, response.text
    return dict(response.json())


def ids(result: dict) -> list[str]:
    return [hit["id"] for hit in result["hits"]]


def test_keyword_mode_finds_codes_and_scores_by_bm25(client: TestClient) -> None:
    found = search(client, "R-4821", mode="keyword", k=3)
    assert found["mode"] == "keyword" and ids(found)[0] == "p0"
    scores = [h["score"] for h in found["hits"]]
    assert scores == sorted(scores, reverse=True) and scores[0] > 1.0  # BM25, not a cosine
    shelf = search(client, "item", mode="keyword", filter={"shelf": "south"})
    assert ids(shelf) == ["p5"]


def test_hybrid_is_the_default_and_vector_stays_available(client: TestClient) -> None:
    default = search(client, "Nimbus vase K-9992", k=3)
    assert default["mode"] == "hybrid" and ids(default)[0] == "p2"
    weighted = search(client, "K-9992", ranker="weighted", hybrid_weights=[0.3, 0.7], k=3)
    assert weighted["mode"] == "hybrid" and ids(weighted)[0] == "p2"
    vector = search(client, "K-9992", mode="vector", k=6)
    assert vector["mode"] == "vector" and len(vector["hits"]) == 6
    assert all(-1.0 <= h["score"] <= 1.0 for h in vector["hits"])
    assert search(client, "a red circle", min_score=-1.0)["mode"] == "vector"  # a cosine floor


@pytest.mark.parametrize(
    ("body", "wanted"),
    [
        ({"query": "lamp", "mode": "keyword", "min_score": 0.2}, "apply to mode=vector only"),
        ({"query": "lamp", "mode": "hybrid", "diversity": 0.5}, "apply to mode=vector only"),
        ({"query": "lamp", "hybrid_weights": [0, 0]}, "not both 0"),
        ({"query": "lamp", "ranker": "rrf", "hybrid_weights": [0.5, 0.5]}, "ranker=weighted"),
        ({"query": "lamp", "mode": "fuzzy"}, "mode"),
        ({"query": "lamp", "mode": "keyword", "collection": "legacy"},
         "mmrag reindex --add-text-index --collection legacy"),
        ({"query": "lamp", "mode": "hybrid", "collection": "legacy"}, "has no text index"),
    ],
)
def test_input_that_cannot_run_is_a_422_that_says_why(
    client: TestClient, body: dict, wanted: str
) -> None:
    response = client.post("/search", json=body)
    assert response.status_code == 422, response.text
    assert wanted in response.text


def test_a_collection_without_the_text_index_searches_by_vector(client: TestClient) -> None:
    result = search(client, "lamp", collection="legacy", k=2)
    assert result["mode"] == "vector" and len(result["hits"]) == 2


def test_image_queries_are_vector_only(client: TestClient) -> None:
    response = client.post("/search/similar", json={"id": "p0", "mode": "keyword"})
    assert response.status_code == 422 and "searched by vector only" in response.text
    assert client.post("/search/similar", json={"id": "p0", "mode": "vector"}).status_code == 200


def test_chat_retrieves_in_the_mode_asked(client: TestClient) -> None:
    body = {"messages": [{"role": "user", "content": "Which item is K-9992?"}], "k": 2}
    keyword = client.post("/chat", json={**body, "mode": "keyword"})
    assert keyword.status_code == 200, keyword.text
    assert keyword.json()["citations"][0]["id"] == "p2"
    refused = client.post("/chat", json={**body, "mode": "keyword", "collection": "legacy"})
    assert refused.status_code == 422 and "--add-text-index" in refused.text
    assert np.isfinite(client.post("/chat", json=body).json()["citations"][0]["score"])


def test_ask_retrieves_in_the_mode_asked(
    client: TestClient, settings: Settings, tiny_model_files: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    config, checkpoint = tiny_model_files
    flags = ["--uri", settings.uri, "--model", str(config), "--pretrained", "",
             "--checkpoint", str(checkpoint), "--device", "cpu", "--llm", "extractive"]
    question = ["ask", "Which item is K-9992?", "-k", "2", "--json"]
    assert main([*question, "--mode", "keyword", "--collection", "shop", *flags]) == 0
    assert json.loads(capsys.readouterr().out)["citations"][0]["id"] == "p2"
    assert main([*question, "--mode", "keyword", "--collection", "legacy", *flags]) == 2
    assert "--add-text-index" in capsys.readouterr().err
    assert main([*question, "--mode", "fuzzy", "--collection", "shop", *flags]) == 2
    assert "--mode" in capsys.readouterr().err
