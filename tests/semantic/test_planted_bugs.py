"""Classic silent bugs, planted one at a time: the semantic checks must catch each of them.

Each ingest-time bug is planted only while its collection is ingested (with ``mmrag ingest``),
then the collection is queried through the same API as the real one. Query-time bugs are planted
in a second app over the real collection. A COSINE collection is not planted: on unit vectors it
ranks and scores exactly as IP does.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import open_clip
import pytest
import torch
from fastapi.testclient import TestClient
from safetensors.torch import save_file

import ingest.job
import retrieval.embedders.base as embedder_base
import retrieval.imaging as imaging
import retrieval.stores.milvus as milvus_store
from ingest.loading import Work
from retrieval.api import create_app
from retrieval.api.query_models import QueryModels
from retrieval.api.search_runner import SearchRunner
from retrieval.config import Settings
from retrieval.demo.paths import CONFIG_PATH
from retrieval.embedders import add_model_config
from retrieval.embedders.base import Embedder
from tests.api.helpers import wait_ready
from tests.semantic.checks import (
    PrecisionReport,
    Search,
    api_search,
    check_reference_embeddings,
    check_scores_are_cosines,
    check_self_retrieval,
    check_unit_norms,
    sample,
    semantic_precision,
    stored_records,
)
from tests.semantic.conftest import REAL, Gallery

SAMPLED = 12


def measured(bug: str, search: Search) -> PrecisionReport:
    """The planted system's precision@5 (printed: run with -s to see every bug's number)."""
    precision = semantic_precision(search)
    print(f"\nplanted {bug}: text→image precision@5 {precision.mean:.3f}")
    return precision


def picked(gallery: Gallery, collection: str) -> list[Any]:
    """A sample of a collection's stored records, with vectors."""
    store = gallery.store(collection)
    try:
        return sample(stored_records(store), SAMPLED)
    finally:
        store.close()


def test_images_fed_as_bgr_are_caught(
    gallery: Gallery, client: TestClient, demo_embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    finish = imaging._finish  # the decoder "forgets" cv2's BGR -> RGB, for ingest and queries

    def no_conversion(pixels: np.ndarray, max_pixels: int, *, bgr: bool) -> np.ndarray:
        return finish(pixels, max_pixels, bgr=False)

    monkeypatch.setattr(imaging, "_finish", no_conversion)
    gallery.ingest("bgr")
    precision = measured("BGR input", api_search(client, "bgr"))
    assert not precision.passed, precision.mean
    records = picked(gallery, "bgr")
    reference = check_reference_embeddings(demo_embedder, records)
    assert not reference.passed, reference
    # Image-to-image search cannot see it: query images go through the same wrong decoder.
    assert check_self_retrieval(client, "bgr", records).passed


def test_vectors_not_normalised_are_caught(
    gallery: Gallery, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def raw(vectors: np.ndarray, eps: float = 1e-12) -> np.ndarray:
        return np.ascontiguousarray(vectors, dtype=np.float32)

    monkeypatch.setattr(embedder_base, "l2_normalize", raw)  # stored and query vectors alike
    gallery.ingest("raw")
    measured("unnormalised vectors", api_search(client, "raw"))
    store = gallery.store("raw")
    try:
        norms = check_unit_norms(store)
    finally:
        store.close()
    assert not norms.passed, norms
    itself = check_self_retrieval(client, "raw", picked(gallery, "raw"))
    assert not itself.passed, itself


def test_wrong_metric_is_caught(
    gallery: Gallery, client: TestClient, demo_embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(milvus_store, "METRIC", "L2")  # index and search both use L2
    gallery.ingest("l2")
    measured("L2 metric", api_search(client, "l2"))
    itself = check_self_retrieval(client, "l2", picked(gallery, "l2"))
    assert not itself.passed, itself
    store = gallery.store("l2")
    try:
        scores = check_scores_are_cosines(client, "l2", store, demo_embedder, ["a red circle"])
    finally:
        store.close()
    assert not scores.passed, scores


def test_vectors_shifted_within_a_batch_are_caught(
    gallery: Gallery, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    embed_prepared = Embedder.embed_prepared

    def shifted(self: Embedder, prepared: Any) -> np.ndarray:
        vectors = embed_prepared(self, prepared)
        return np.roll(vectors, 1, axis=0) if len(vectors) > 1 else vectors

    with monkeypatch.context() as plant:
        plant.setattr(Embedder, "embed_prepared", shifted)
        gallery.ingest("shifted")
    precision = measured("vectors shifted within a batch", api_search(client, "shifted"))
    assert not precision.passed, precision.mean
    itself = check_self_retrieval(client, "shifted", picked(gallery, "shifted"))
    assert not itself.passed, itself


def test_decode_workers_handing_images_to_other_rows_are_caught(
    gallery: Gallery, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    decode_with = ingest.job.decode_with
    lock = threading.Lock()
    slot: list[Any] = []

    def shared_buffer(work: Work, decoder: Any) -> Work:
        done = decode_with(work, decoder)
        if done.prepared is None:
            return done
        with lock:  # each row gets the image the previous worker call decoded
            previous = slot.pop() if slot else done.prepared
            slot.append(done.prepared)
        return replace(done, prepared=previous)

    with monkeypatch.context() as plant:
        plant.setattr(ingest.job, "decode_with", shared_buffer)
        gallery.ingest("swapped")
    precision = measured("decode workers mixing rows", api_search(client, "swapped"))
    assert not precision.passed, precision.mean
    itself = check_self_retrieval(client, "swapped", picked(gallery, "swapped"))
    assert not itself.passed, itself


@pytest.fixture
def bugged_client(gallery: Gallery) -> Iterator[Any]:
    """A factory of extra API clients over the real collection (closed after the test)."""
    opened: list[TestClient] = []

    def make(settings: Settings | None = None) -> TestClient:
        test_client = TestClient(create_app(settings or gallery.settings))
        test_client.__enter__()
        opened.append(test_client)
        wait_ready(test_client)
        return test_client

    yield make
    for test_client in opened:
        test_client.__exit__(None, None, None)


def render_text(text: str) -> np.ndarray:
    """The query written on a white 96-px canvas (what an image tower would see of it)."""
    canvas = np.full((96, 96, 3), 255, dtype=np.uint8)
    for row, word in enumerate(text.split()):
        cv2.putText(canvas, word, (4, 24 + 22 * row), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1)
    return canvas


def test_text_query_sent_through_the_image_path_is_caught(
    bugged_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def through_image_tower(self: QueryModels, embedder: Embedder, texts: list[str]) -> np.ndarray:
        return embedder.embed_images([render_text(t) for t in texts])

    monkeypatch.setattr(QueryModels, "_embed_texts", through_image_tower)
    precision = measured("text through the image path", api_search(bugged_client(), REAL))
    assert not precision.passed, precision.mean


@pytest.fixture(scope="session")
def other_demo_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Randomly initialised mmrag-demo weights: the same model and width, another model id."""
    add_model_config(CONFIG_PATH)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(99)
        model = open_clip.create_model("mmrag-demo")
    path = tmp_path_factory.mktemp("other_model") / "mmrag-demo-random.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def test_queries_with_another_model_are_refused_or_caught(
    gallery: Gallery,
    bugged_client: Any,
    other_demo_weights: Path,
    tiny_model_files: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config, checkpoint = tiny_model_files
    tiny = gallery.settings.model_copy(update={"model": str(config), "checkpoint": checkpoint})
    response = bugged_client(tiny).post("/search", json={"query": "a red circle"})
    assert response.status_code == 409, response.text  # the collection remembers its model
    other = gallery.settings.model_copy(update={"checkpoint": other_demo_weights})
    response = bugged_client(other).post("/search", json={"query": "a red circle"})
    assert response.status_code == 409, response.text

    async def unchecked(self: SearchRunner, collection: str | None, embedder: Embedder) -> None:
        return None

    monkeypatch.setattr(SearchRunner, "check_model", unchecked)  # no guard: now it is silent
    precision = measured("another model's text encoder", api_search(bugged_client(other), REAL))
    assert not precision.passed, precision.mean
