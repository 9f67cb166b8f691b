"""Keyword (BM25) and hybrid search on real Milvus Lite: the text index, filters, paging,
fusion, bad input, and adding the index to an old collection without re-embedding."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from ingest.reindex import ReindexOptions, add_text_index
from retrieval.config import Settings
from retrieval.errors import ConfigError, TextIndexMissingError
from retrieval.search import HYBRID, KEYWORD, VECTOR, SearchRequest, resolve_mode
from retrieval.search_options import fusion_from
from retrieval.stores.base import Fusion
from retrieval.stores.milvus import MilvusStore
from retrieval.types import Record

DIM = 8
MODEL = "test-model"
# id, caption, metadata: the vectors say nothing of codes or names
ROWS = (
    ("a", "Aurora lamp, item R-4821", {"sku": "R-4821", "shelf": "north", "name": "a.png"}),
    ("b", "Zephyr chairs, item B-1234", {"sku": "B-1234", "shelf": "north", "name": "b.png"}),
    ("c", "Nimbus vase, item K-9992", {"sku": "K-9992", "shelf": "south", "name": "c.png"}),
    ("d", "", {"sku": "T-0007", "shelf": "south", "name": "holiday-sunset.jpg"}),
    ("e", "Orion clock", {"sku": "Q-5555", "shelf": "south", "secret": "hidden", "name": "e.png"}),
)


def unit(seed: int) -> np.ndarray:
    vector = np.random.default_rng(seed).normal(size=DIM).astype(np.float32)
    return vector / np.linalg.norm(vector)


def records() -> list[Record]:
    return [
        Record(id=i, vector=unit(n), source=f"/photos/{meta['name']}", caption=caption,
               metadata=meta, model_id=MODEL)
        for n, (i, caption, meta) in enumerate(ROWS)
    ]


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("keyword") / "kw.db"


@pytest.fixture(scope="module")
def store(db: Path) -> Iterator[MilvusStore]:
    with MilvusStore(str(db), "products") as opened:
        opened.ensure_collection(DIM, MODEL, text_columns=["sku"])
        opened.add(records())
        opened.flush()
        yield opened


def ids(hits: list) -> list[str]:
    return [h.id for h in hits]


def test_new_collections_index_caption_file_name_and_named_columns(store: MilvusStore) -> None:
    assert store.capabilities.full_text and store.has_text_index()
    assert store.text_columns() == ("sku",)
    found = store.keyword_search(["R-4821", "chair", "holiday", "T-0007", "hidden"], 5)
    assert ids(found[0])[0] == "a"  # the code, in the caption and the sku column
    assert ids(found[1]) == ["b"]  # English analysis: "chair" finds "chairs"
    assert ids(found[2]) == ["d"]  # the file name
    assert ids(found[3]) == ["d"]  # a named text column of a row without caption
    assert found[4] == []  # a column nobody named is not indexed
    assert found[0][0].score > 0 and found[0][0].caption == "Aurora lamp, item R-4821"
    assert store.keyword_search(["a red circle"], 5) == [[]]  # stop words match nothing


def test_filters_and_pages_apply_to_keyword_and_hybrid(store: MilvusStore) -> None:
    south = "metadata[\"shelf\"] == \"south\""
    assert set(ids(store.keyword_search(["item"], 10, expr=south)[0])) == {"c"}
    ranked = "item lamp R-4821 chairs"  # distinct scores: a (4 terms), b (2), c (1)
    assert ids(store.keyword_search([ranked], 10)[0]) == ["a", "b", "c"]
    assert ids(store.keyword_search([ranked], 1, offset=1)[0]) == ["b"]
    query = np.stack([unit(0)])
    hybrid = ids(store.hybrid_search(query, ["item"], 10, expr=south)[0])
    assert hybrid and set(hybrid) <= {"c", "d", "e"}
    full = ids(store.hybrid_search(query, ["K-9992"], 5)[0])
    assert ids(store.hybrid_search(query, ["K-9992"], 2, offset=1)[0]) == full[1:3]


def test_hybrid_puts_the_item_both_rankings_agree_on_first(store: MilvusStore) -> None:
    # the vector is nearest to "a" and the code names "c": "c" is second by vector
    vector = unit(0) * 0.8 + unit(2) * 0.6
    vector /= np.linalg.norm(vector)
    by_vector = ids(store.search(vector[None, :], 5)[0])
    assert by_vector[0] == "a" and by_vector[1] == "c"
    for fusion in (Fusion(), Fusion("weighted", weights=(0.5, 0.5))):
        hits = store.hybrid_search(vector[None, :], ["K-9992"], 5, fusion=fusion)[0]
        assert ids(hits)[0] == "c", fusion
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    only_vector = store.hybrid_search(vector[None, :], ["K-9992"], 5, fusion=Fusion(
        "weighted", weights=(1.0, 0.0)))[0]
    assert ids(only_vector)[0] == "a"


def test_modes_resolve_to_hybrid_where_the_index_is(store: MilvusStore) -> None:
    assert resolve_mode(store, SearchRequest(), text=True).mode == HYBRID
    assert resolve_mode(store, SearchRequest(min_score=0.2), text=True).mode == VECTOR
    assert resolve_mode(store, SearchRequest(diversity=0.5), text=True).mode == VECTOR
    assert resolve_mode(store, SearchRequest(mode=KEYWORD), text=True).mode == KEYWORD
    assert resolve_mode(store, SearchRequest(), text=False).mode == VECTOR
    with pytest.raises(ConfigError, match="image query is searched by vector only"):
        resolve_mode(store, SearchRequest(mode=HYBRID), text=False)
    with pytest.raises(ConfigError, match="apply to mode=vector only"):
        resolve_mode(store, SearchRequest(mode=KEYWORD, min_score=0.1), text=True)


def test_bad_keyword_and_fusion_input_is_refused(store: MilvusStore) -> None:
    with pytest.raises(ConfigError, match="keyword query is empty"):
        store.keyword_search(["   "], 5)
    with pytest.raises(ConfigError, match="not both 0"):
        fusion_from(None, [0.0, 0.0])
    with pytest.raises(ConfigError, match="not both 0"):
        store.hybrid_search(np.stack([unit(0)]), ["lamp"], 5,
                            fusion=Fusion("weighted", weights=(0.0, 0.0)))
    with pytest.raises(ConfigError, match="ranker=weighted"):
        fusion_from("rrf", [0.5, 0.5])
    with pytest.raises(ConfigError, match="one text per vector"):
        store.hybrid_search(np.stack([unit(0), unit(1)]), ["lamp"], 5)


def test_an_old_collection_gets_the_index_without_re_embedding(
    db: Path, store: MilvusStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    with MilvusStore(str(db), "legacy") as old:
        with monkeypatch.context() as before_bm25:  # made as before the text index existed
            before_bm25.setattr("retrieval.stores.milvus.MilvusStore._create",
                                _create_without_text_index)
            old.ensure_collection(DIM, MODEL)
        old.add(records())
        old.flush()
        assert not old.has_text_index()
        assert resolve_mode(old, SearchRequest(), text=True).mode == VECTOR
        with pytest.raises(TextIndexMissingError, match="mmrag reindex --add-text-index"):
            old.keyword_search(["lamp"], 5)
        with pytest.raises(TextIndexMissingError, match="mmrag reindex --add-text-index"):
            resolve_mode(old, SearchRequest(mode=HYBRID), text=True)
        stored = {r.id: r.vector for r in old.get([r.id for r in records()], with_vectors=True)}
    settings = Settings(uri=str(db), collection="legacy")
    summary = add_text_index(settings, ["sku"], ReindexOptions(settle_s=0.0))
    assert summary.switched and summary.copied == len(ROWS) and summary.new_collection
    with MilvusStore(str(db), "legacy") as moved:
        assert moved.resolve() == summary.new_collection and moved.has_text_index()
        assert ids(moved.keyword_search(["T-0007"], 5)[0]) == ["d"]
        after = {r.id: r.vector for r in moved.get(list(stored), with_vectors=True)}
    assert after.keys() == stored.keys()
    for key, vector in stored.items():
        assert np.array_equal(after[key], vector)  # copied, not embedded again
    with pytest.raises(ConfigError, match="already has a text index"):
        add_text_index(settings, ["sku"], ReindexOptions(settle_s=0.0))


def _create_without_text_index(
    self: MilvusStore, dim: int, model_id: str, spec: object, columns: tuple[str, ...]
) -> None:
    """MilvusStore._create as it was before the text index: today's schema, no BM25."""
    from retrieval.stores.milvus_rows import METRIC
    from retrieval.stores.milvus_schema import build_index, build_schema

    with self._call("create_collection") as client:
        client.create_collection(
            self._target, schema=build_schema(dim, model_id, None),
            index_params=build_index(self.index_type, METRIC),
        )
    self._meta_cache = None


def test_keyword_and_hybrid_on_an_empty_collection_find_nothing(db: Path) -> None:
    """Milvus Lite's BM25 over a corpus that never held a row fails ("Invalid sparse row: NaN
    or Inf", a 503 in the API); the store answers no hits instead, and finds the first row."""
    with MilvusStore(str(db), "empty_products") as empty:
        empty.ensure_collection(DIM, MODEL)
        assert empty.keyword_search(["lamp"], 5) == [[]]
        assert empty.hybrid_search(unit(0)[None, :], ["lamp"], 5) == [[]]
        empty.add(records()[:1])
        assert ids(empty.keyword_search(["lamp"], 5)[0]) == ["a"]
        empty.drop()
