"""Composed queries (#18.3) on the embedded Milvus 2.3 server: stored-item terms read their
vectors from the server, and the combination is searched with filters like any query."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import numpy as np
import pytest

from retrieval.compose import CompositionError, Term, TermKind, compose_vector
from retrieval.embedders.base import Embedder
from retrieval.errors import StoreError
from retrieval.search import Searcher, SearchRequest, search_page
from retrieval.stores import open_store
from retrieval.stores.base import VectorStore
from retrieval.types import Record
from tests.support.images import make_test_image

pytestmark = pytest.mark.server


@pytest.fixture
def server_store(milvus_server, tiny_embedder: Embedder) -> Iterator[VectorStore]:
    """12 images embedded by the tiny model, labelled dog/cat, in a fresh server collection."""
    store = open_store(milvus_server.uri, f"compose_{uuid.uuid4().hex[:10]}")
    store.ensure_collection(tiny_embedder.dim, tiny_embedder.model_id)
    images = [make_test_image(i, 64, 64) for i in range(12)]
    vectors = tiny_embedder.embed_images(images)
    store.upsert([
        Record(id=f"img-{i}", vector=vectors[i], source=f"/img/{i}.png",
               metadata={"label": "dog" if i % 2 else "cat"}, model_id=tiny_embedder.model_id)
        for i in range(12)
    ])
    store.flush()
    assert store.wait_until_indexed(timeout=60)
    yield store
    with contextlib.suppress(StoreError):
        store.drop()
    store.close()


def test_composition_on_the_server(server_store: VectorStore, tiny_embedder: Embedder) -> None:
    terms = [Term(TermKind.TEXT, "a dog"), Term(TermKind.ITEM, "img-3", 2.0),
             Term(TermKind.TEXT, "grass", -0.5)]
    vector = compose_vector(terms, tiny_embedder, server_store, lambda path: np.zeros(1))
    text = tiny_embedder.embed_texts(["a dog", "grass"])
    item = np.asarray(server_store.get(["img-3"], with_vectors=True)[0].vector)
    manual = text[0] + 2 * item / np.linalg.norm(item) - 0.5 * text[1]
    np.testing.assert_allclose(vector, manual / np.linalg.norm(manual), atol=1e-5)
    request = SearchRequest(k=4, expr='metadata["label"] == "dog"')
    hits = Searcher(tiny_embedder, server_store).search_vector(vector, request)
    assert [h.id for h in hits] == [h.id for h in search_page(server_store, manual, request)]
    assert hits and all(h.metadata["label"] == "dog" for h in hits)
    alone = compose_vector([Term(TermKind.ITEM, "img-7")], tiny_embedder, server_store, np.zeros)
    assert search_page(server_store, alone, SearchRequest(k=1))[0].id == "img-7"
    with pytest.raises(CompositionError, match="no stored item 'img-99'"):
        compose_vector([Term(TermKind.ITEM, "img-99"), Term(TermKind.TEXT, "a dog")],
                       tiny_embedder, server_store, np.zeros)
