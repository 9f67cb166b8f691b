"""The demo model through the whole system: `mmrag ingest` -> Milvus Lite -> the search API.

The same checks run against planted bugs in test_planted_bugs.py and must fail there.
"""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from retrieval.demo.synthetic import caption_for
from retrieval.embedders.base import Embedder
from retrieval.ids import content_id
from retrieval.stores.base import VectorStore
from tests.semantic.checks import (
    PRECISION_THRESHOLD,
    api_search,
    check_reference_embeddings,
    check_scores_are_cosines,
    check_self_retrieval,
    check_unit_norms,
    sample,
    semantic_precision,
    stored_records,
)
from tests.semantic.conftest import GALLERY_SIZE, REAL


def test_text_to_image_precision_on_trained_combinations(client: TestClient) -> None:
    report = semantic_precision(api_search(client, REAL))
    print(f"\nreal system: text→image precision@5 {report.mean:.3f} on trained combinations")
    worst = sorted(report.per_query.items(), key=lambda item: item[1])[:5]
    assert report.mean >= PRECISION_THRESHOLD, f"{report.mean:.3f}; weakest {worst}"


def test_every_item_keeps_its_own_id_source_caption_and_metadata(real_store: VectorStore) -> None:
    records = stored_records(real_store, with_vectors=False)
    assert len(records) == GALLERY_SIZE
    for record in records:
        path = Path(record.source)
        colour, shape = path.stem.split("_")[1:]  # written as 00012_<colour>_<shape>.png
        assert (record.metadata["colour"], record.metadata["shape"]) == (colour, shape)
        assert record.caption == caption_for(colour, shape)
        assert record.id == content_id(path.read_bytes())


def test_real_system_passes_every_invariant(
    client: TestClient, real_store: VectorStore, demo_embedder: Embedder
) -> None:
    picked = sample(stored_records(real_store), 12)
    norms = check_unit_norms(real_store)
    assert norms.passed, norms
    itself = check_self_retrieval(client, REAL, picked)
    assert itself.passed, itself
    reference = check_reference_embeddings(demo_embedder, picked)
    assert reference.passed, reference
    queries = ["a red circle", "a blue star", "a white cross"]
    scores = check_scores_are_cosines(client, REAL, real_store, demo_embedder, queries)
    assert scores.passed, scores
