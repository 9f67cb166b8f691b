"""Aliases (server aliases, Lite pointer files), recorded model specs, and server index params."""

from __future__ import annotations

import time

import numpy as np
import pytest

from retrieval.errors import ConfigError, ModelMismatchError, StoreError
from retrieval.stores import lite_aliases
from retrieval.stores.milvus import MilvusStore
from tests.contract.helpers import DIM, MODEL, EmbeddedServer, StoreFactory, make_records

OTHER = "test/model-b"
SPEC = {"model": "ViT-B-32", "pretrained": None, "checkpoint": "/models/b.safetensors"}


def test_alias_moves_readers_and_pinned_writers_stay(store_factory: StoreFactory) -> None:
    suffix = time.monotonic_ns()
    old, new = store_factory(f"v1_{suffix}"), store_factory(f"v2_{suffix}")
    alias = f"live_{suffix}"
    old.ensure_collection(DIM, MODEL)
    new.ensure_collection(8, OTHER, spec=SPEC)
    old.upsert(make_records(3, prefix="old"))
    new.upsert(make_records(2, dim=8, prefix="new", seed=3))
    assert old.describe_alias(alias) is None and old.list_aliases() == []
    with pytest.raises(StoreError, match="does not exist"):
        old.alter_alias(alias)
    old.create_alias(alias)
    with pytest.raises(StoreError, match="already exists"):
        new.create_alias(alias)
    assert old.describe_alias(alias) == old.collection and old.list_aliases() == [alias]

    reader = store_factory(alias)
    writer = store_factory(alias)
    writer.ensure_collection(DIM, MODEL)  # pins the writer to v1
    assert reader.resolve() == old.collection and reader.count() == 3
    assert reader.info().model_id == MODEL and reader.model_spec() is None

    new.alter_alias(alias)
    assert new.describe_alias(alias) == new.collection
    assert old.list_aliases() == [] and new.list_aliases() == [alias]
    if reader.capabilities.embedded:
        assert reader.count() == 3  # a Lite store follows its pointer file on refresh()
        assert reader.refresh() == new.collection
    assert reader.resolve() == new.collection
    assert reader.count() == 2
    info = reader.info()
    assert (info.name, info.dim, info.model_id) == (alias, 8, OTHER)
    assert reader.model_spec() == SPEC
    hits = reader.search(make_records(1, dim=8, prefix="new", seed=3)[0].vector[None, :], k=1)
    assert hits[0][0].id == "new0000" and hits[0][0].model_id == OTHER

    writer.upsert(make_records(4, prefix="late"))  # still the old model's collection
    assert old.count() == 7 and new.count() == 2
    with pytest.raises(ModelMismatchError):
        store_factory(alias).ensure_collection(DIM, MODEL)  # the alias now holds another model

    assert new.drop_alias(alias) and not new.drop_alias(alias)
    assert new.describe_alias(alias) is None
    with pytest.raises(ConfigError, match="valid"):
        new.set_alias("bad-name")


def test_lite_pointer_file_is_plain_json(tmp_path: object, store_factory: StoreFactory) -> None:
    store = store_factory("target_a")
    if not store.capabilities.embedded:
        pytest.skip("the pointer file is Milvus Lite's alias")
    assert isinstance(store, MilvusStore)
    store.ensure_collection(DIM, MODEL)
    store.set_alias("front")
    assert store._lite_db is not None
    path = lite_aliases.aliases_path(store._lite_db)
    assert path.name.endswith(".db.aliases.json")
    assert lite_aliases.read_aliases(store._lite_db) == {"front": "target_a"}
    assert store_factory("front").resolve() == "target_a"
    path.write_text("{not json")
    with pytest.raises(StoreError, match="alias file"):
        store.describe_alias("front")


@pytest.mark.server
def test_server_rename_keeps_rows_and_load(milvus_server: EmbeddedServer) -> None:
    suffix = time.monotonic_ns()
    with MilvusStore(milvus_server.uri, f"before_{suffix}") as store:
        store.ensure_collection(DIM, MODEL)
        store.upsert(make_records(5))
        store.rename(f"after_{suffix}")
        assert store.collection == f"after_{suffix}" and store.count() == 5
        assert store.search(make_records(1)[0].vector[None, :], k=1)[0][0].id == "r0000"
        assert f"before_{suffix}" not in store.list_collections()
        store.drop()


def _recall(hits: list, truth: np.ndarray, ids: list[str]) -> float:
    found = sum(len({h.id for h in hits[q]} & {ids[i] for i in truth[q]}) for q in range(len(hits)))
    return found / truth.size


@pytest.mark.server
def test_server_index_parameters(milvus_server: EmbeddedServer) -> None:
    """HNSW and IVF_FLAT build parameters are recorded; IVF nprobe trades recall for speed."""
    from pymilvus import MilvusClient

    dim, count, k = 32, 3000, 10
    records = make_records(count, dim=dim, seed=31)
    ids = [r.id for r in records]
    queries = make_records(40, dim=dim, seed=32)
    matrix = np.stack([r.vector for r in records])
    qmatrix = np.stack([q.vector for q in queries])
    truth = np.argsort(-(qmatrix @ matrix.T), axis=1)[:, :k]
    suffix = time.monotonic_ns()
    client = MilvusClient(milvus_server.uri)
    try:
        with MilvusStore(milvus_server.uri, f"hnsw_p_{suffix}") as hnsw:
            hnsw.ensure_collection(dim, MODEL)
            about = client.describe_index(hnsw.collection, "vector")
            assert (about["index_type"], about["metric_type"]) == ("HNSW", "IP")
            assert (int(about["M"]), int(about["efConstruction"])) == (16, 200)
            hnsw.drop()
        recalls = {}
        name = f"ivf_p_{suffix}"
        with MilvusStore(milvus_server.uri, name, index_type="IVF_FLAT") as ivf:
            ivf.ensure_collection(dim, MODEL)
            about = client.describe_index(name, "vector")
            assert (about["index_type"], int(about["nlist"])) == ("IVF_FLAT", 128)
            ivf.upsert(records)
            ivf.flush()
            assert ivf.wait_until_indexed(timeout=60)
            for nprobe in (1, 128):
                with MilvusStore(milvus_server.uri, name, ivf_nprobe=nprobe) as reader:
                    recalls[nprobe] = _recall(reader.search(qmatrix, k=k), truth, ids)
            ivf.drop()
    finally:
        client.close()
    print(f"IVF_FLAT nlist=128 recall@{k}: nprobe 1 {recalls[1]:.3f}, 128 {recalls[128]:.3f}")
    assert recalls[128] == 1.0  # every list probed: exact
    assert recalls[1] < 0.9  # one of 128 lists: fast and approximate
    with pytest.raises(ConfigError, match="ivf_nprobe"):
        MilvusStore(milvus_server.uri, name, ivf_nprobe=0)
