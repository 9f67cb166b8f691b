"""Near-duplicates (#18.4) on the embedded Milvus 2.3 server: range search (radius and
range_filter) through its HNSW index finds every planted group and joins nothing else."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import numpy as np
import pytest

from retrieval.duplicates import duplicate_page, find_groups
from retrieval.errors import ConfigError, StoreError
from retrieval.stores import open_store
from retrieval.stores.base import VectorStore
from retrieval.types import Modality, Record

pytestmark = pytest.mark.server
DIM = 32


@pytest.fixture
def planted(milvus_server) -> Iterator[tuple[VectorStore, list[set[str]]]]:
    """300 random unit vectors; 9 of them with 1-3 near copies (cosine > 0.99); one text row
    that copies an image's vector (text rows are not images: never grouped)."""
    store = open_store(milvus_server.uri, f"dups_{uuid.uuid4().hex[:10]}")
    store.ensure_collection(DIM, "m")
    rng = np.random.default_rng(7)
    base = rng.normal(size=(300, DIM))
    records = [Record(id=f"d{i:03d}", vector=v, source=f"/d/{i}.jpg", model_id="m")
               for i, v in enumerate(base)]
    groups: list[set[str]] = []
    for g, original in enumerate(range(0, 300, 37)):
        group = {f"d{original:03d}"}
        for c in range(1 + g % 3):
            copy = base[original] + rng.normal(scale=0.05, size=DIM)
            records.append(Record(id=f"c{original:03d}_{c}", vector=copy, source="copy",
                                  model_id="m"))
            group.add(f"c{original:03d}_{c}")
        groups.append(group)
    records.append(Record(id="text-0", vector=base[1], source="doc.txt", model_id="m",
                          modality=Modality.TEXT))
    store.upsert([Record(r.id, (r.vector / np.linalg.norm(r.vector)).astype(np.float32),
                         r.source, modality=r.modality, model_id="m") for r in records])
    store.flush()
    assert store.wait_until_indexed(timeout=60)
    yield store, groups
    with contextlib.suppress(StoreError):
        store.drop()
    store.close()


def test_range_search_groups_on_the_server(planted: tuple[VectorStore, list[set[str]]]) -> None:
    store, groups = planted
    assert store.info().index_type == "HNSW"
    found, scanned = find_groups(store, 0.95, batch_size=64)
    assert scanned == 300 + sum(len(g) - 1 for g in groups)  # images only
    assert sorted(sorted(m.id for m in g.members) for g in found) == sorted(
        sorted(g) for g in groups)
    assert [len(g.members) for g in found] == sorted((len(g) for g in groups), reverse=True)
    page = duplicate_page(store, 0.95, page=2, page_size=3)
    assert page.total_groups == len(groups) == 9 and page.groups == found[3:6]
    hits = store.range_search(np.stack([store.get(["d000"], with_vectors=True)[0].vector]), 0.95)
    assert {h.id for h in hits[0]} == groups[0] and all(h.score > 0.95 for h in hits[0])
    with pytest.raises(ConfigError, match="threshold must be within"):
        find_groups(store, 0.0)
