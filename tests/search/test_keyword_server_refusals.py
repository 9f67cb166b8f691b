"""A Milvus server before 2.5 (the embedded 2.3.5) has no BM25: keyword and hybrid are refused
with its version, new collections keep today's schema, and vector search works."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from ingest.reindex import add_text_index
from retrieval.config import Settings
from retrieval.errors import TextIndexMissingError
from retrieval.search import HYBRID, KEYWORD, VECTOR, SearchRequest, resolve_mode
from retrieval.stores.milvus import MilvusStore
from retrieval.types import Record
from tests.support.milvus_server import EmbeddedServer

DIM = 8


def test_before_milvus_2_5_keyword_and_hybrid_name_the_version(
    milvus_server: EmbeddedServer,
) -> None:
    name = f"kw_{uuid.uuid4().hex[:8]}"
    vectors = np.eye(DIM, dtype=np.float32)[:3]
    with MilvusStore(milvus_server.uri, name) as store:
        try:
            capabilities = store.capabilities
            assert not capabilities.full_text
            assert "2.3" in capabilities.full_text_missing
            assert "2.5" in capabilities.full_text_missing
            with pytest.raises(TextIndexMissingError, match=r"2\.5"):
                store.ensure_collection(DIM, "m", text_columns=["sku"])
            store.ensure_collection(DIM, "m")  # today's schema
            assert not store.has_text_index()
            store.add([Record(id=f"r{i}", vector=v, source=f"/{i}.png", caption="Aurora lamp",
                              model_id="m") for i, v in enumerate(vectors)])
            store.flush()
            assert store.wait_until_indexed(timeout=120)
            assert [h.id for h in store.search(vectors[1:2], 1)[0]] == ["r1"]  # vector works
            assert resolve_mode(store, SearchRequest(), text=True).mode == VECTOR
            for mode in (KEYWORD, HYBRID):
                with pytest.raises(TextIndexMissingError, match=r"Milvus v?2\.3\.\d.*2\.5"):
                    resolve_mode(store, SearchRequest(mode=mode), text=True)
            with pytest.raises(TextIndexMissingError, match=r"2\.5"):
                store.keyword_search(["lamp"], 3)
            with pytest.raises(TextIndexMissingError, match=r"2\.5"):
                store.hybrid_search(vectors[:1], ["lamp"], 3)
            with pytest.raises(TextIndexMissingError, match=r"2\.5"):
                add_text_index(Settings(uri=milvus_server.uri, collection=name), [])
        finally:
            store.drop()
