"""The VectorStore contract, run unchanged on Milvus Lite and on an embedded Milvus server."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from pymilvus import MilvusClient

from retrieval.errors import (
    CollectionNotFoundError,
    ConfigError,
    ModelMismatchError,
    StoreError,
    StoreUnavailableError,
)
from retrieval.stores import is_local_uri, milvus_rows, open_store
from retrieval.stores.base import VectorStore
from retrieval.stores.expr import field_ref, literal, quote_string
from retrieval.stores.milvus import MilvusStore
from retrieval.stores.milvus_rows import MAX_CAPTION_BYTES
from retrieval.stores.milvus_schema import MIN_INDEXED_SEGMENT_ROWS
from retrieval.types import Modality, Record
from tests.contract.helpers import (
    DIM,
    MODEL,
    EmbeddedServer,
    StoreFactory,
    closed_port,
    make_records,
    unit_vectors,
)

HOSTILE = [
    'say "hi"',
    "back\\slash",
    "trailing\\",
    '" or 1==1 or "',
    '\\" or id != "',
    "it's 'single'",
    "ünïcödé 狗 🐕",
    "%_like_%",
    "[brackets] (parens) {braces}",
]


def test_ensure_collection_creates_then_checks_the_model(store_factory: StoreFactory) -> None:
    store = store_factory()
    assert not store.exists()
    store.ensure_collection(DIM, MODEL)
    assert store.exists()
    store.ensure_collection(DIM, MODEL)  # idempotent
    again = store_factory(store.collection)  # a second handle reads what the first recorded
    again.ensure_collection(DIM, MODEL)
    with pytest.raises(ModelMismatchError) as wrong_model:
        again.ensure_collection(DIM, "test/model-b")
    assert MODEL in str(wrong_model.value) and "test/model-b" in str(wrong_model.value)
    with pytest.raises(ModelMismatchError, match=r"dim 16.*dim 32"):
        again.ensure_collection(32, MODEL)
    info = store.info()
    assert (info.name, info.count, info.dim, info.model_id, info.metric) == (
        store.collection,
        0,
        DIM,
        MODEL,
        "IP",
    )
    assert info.index_type == ("FLAT" if store.capabilities.embedded else "HNSW")


def test_upsert_counts_and_replaces_by_id(store: VectorStore) -> None:
    records = make_records(50)
    assert store.upsert(records) == 50
    assert store.count() == 50
    changed = [Record(r.id, r.vector, r.source, caption="new " + r.id) for r in records[:20]]
    assert store.upsert(changed) == 20
    assert store.count() == 50
    assert store.get(["r0003"])[0].caption == "new r0003"
    twice = make_records(2, prefix="dup")
    assert store.upsert([twice[0], twice[1], twice[0]]) == 2  # same id twice in one batch
    assert store.count() == 52
    assert store.upsert([]) == 0


def test_add_writes_new_records_like_upsert(store: VectorStore) -> None:
    """``add`` (ingest's write of ids it checked absent) stores exactly what upsert would."""
    records = make_records(40)
    assert store.add(records) == 40
    twice = make_records(2, prefix="dup")
    assert store.add([twice[0], twice[1], twice[0]]) == 2  # same id twice in one batch
    assert store.count() == 42
    got = store.get(["r0007"], with_vectors=True)[0]
    assert got.source == records[7].source
    np.testing.assert_allclose(got.vector, records[7].vector, atol=1e-6)
    assert store.add([]) == 0
    with pytest.raises(StoreError, match="non-finite"):
        store.add([Record("bad", np.full(DIM, np.nan, np.float32), "s")])
    store.flush()
    assert store.search(records[3].vector[None, :], 1)[0][0].id == "r0003"


def test_existing_ids_reports_only_stored_ids(store: VectorStore) -> None:
    store.upsert(make_records(30))
    asked = [f"r{i:04d}" for i in range(25, 35)] + ["nope", "r0001", "r0001"]
    assert store.existing_ids(asked) == {"r0001"} | {f"r{i:04d}" for i in range(25, 30)}
    assert store.existing_ids([]) == set()
    many = [f"r{i:04d}" for i in range(1000)]  # several id batches
    assert len(store.existing_ids(many)) == 30


def test_get_round_trips_every_field(store: VectorStore) -> None:
    vector = unit_vectors(1, seed=7)[0]
    metadata = {"label": "dog", "n": 3, "score": 0.25, "nested": {"ok": True, "list": [1, "ü"]}}
    long_caption = "é" * 5000  # 10,000 UTF-8 bytes: stored truncated to 4096 bytes
    record = Record(
        id="one",
        vector=vector,
        source="/pictures/ünï/cat 1.png",
        caption=long_caption,
        modality=Modality.TEXT,
        metadata=metadata,
    )
    store.upsert([record, *make_records(3)])
    [got] = store.get(["missing", "one"], with_vectors=True)
    assert got.id == "one" and got.source == record.source
    assert got.modality is Modality.TEXT and got.model_id == MODEL
    assert dict(got.metadata) == metadata
    assert got.caption == "é" * (MAX_CAPTION_BYTES // 2)
    np.testing.assert_allclose(got.vector, vector, atol=1e-6)
    ordered = store.get(["r0002", "one", "r0000"])
    assert [r.id for r in ordered] == ["r0002", "one", "r0000"]
    assert ordered[0].vector.size == 0  # vectors only when asked


def test_upsert_refuses_bad_records(store: VectorStore) -> None:
    good = make_records(1)[0]
    with pytest.raises(ModelMismatchError, match="test/model-b"):
        store.upsert([Record(good.id, good.vector, good.source, model_id="test/model-b")])
    with pytest.raises(ModelMismatchError, match="dim"):
        store.upsert([Record(good.id, np.ones(DIM + 1, np.float32), good.source)])
    with pytest.raises(StoreError, match="not storable"):
        store.upsert([Record("x" * 129, good.vector, good.source)])
    with pytest.raises(StoreError, match="source"):
        store.upsert([Record(good.id, good.vector, "/" + "s" * 2048)])
    with pytest.raises(StoreError, match="non-finite"):
        store.upsert([Record(good.id, np.full(DIM, np.nan, np.float32), good.source)])
    assert store.count() == 0


def test_search_ranks_exact_match_first_and_pages(store: VectorStore) -> None:
    records = make_records(200)
    store.upsert(records)
    queries = np.stack([records[i].vector for i in (0, 17, 123)])
    results = store.search(queries, k=10)
    assert len(results) == 3
    for hits, expected in zip(results, ("r0000", "r0017", "r0123"), strict=True):
        assert hits[0].id == expected
        assert hits[0].score == pytest.approx(1.0, abs=1e-4)
        assert hits[0].source == f"/data/images/{expected}.jpg"
        assert hits[0].model_id == MODEL and hits[0].metadata["n"] == int(expected[1:])
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        assert hits[0].vector is None
    full = [h.id for h in store.search(queries[0], k=10)[0]]
    page = [h.id for h in store.search(queries[0], k=5, offset=5)[0]]
    assert page == full[5:10]
    [with_vec] = store.search(queries[1], k=1, with_vectors=True)
    assert with_vec[0].vector is not None
    np.testing.assert_allclose(with_vec[0].vector, records[17].vector, atol=1e-6)
    assert store.search(np.zeros((0, DIM), np.float32)) == []


def test_search_checks_limits_and_dimension(store: VectorStore) -> None:
    store.upsert(make_records(5))
    query = unit_vectors(1)[0]
    with pytest.raises(ConfigError, match="16384"):
        store.search(query, k=16000, offset=385)
    with pytest.raises(ConfigError):
        store.search(query, k=0)
    with pytest.raises(ModelMismatchError, match="dim"):
        store.search(np.ones(DIM + 1, np.float32))
    assert len(store.search(query, k=16384)[0]) == 5


def test_filters_on_json_metadata_and_caption(store: VectorStore) -> None:
    records = make_records(60)
    store.upsert(records)
    query = records[0].vector
    label = field_ref("metadata", "label")
    dogs = store.search(query, k=100, expr=f"{label} == {literal('dog')}")[0]
    assert {h.id for h in dogs} == {r.id for r in records if r.metadata["label"] == "dog"}
    n = field_ref("metadata", "n")
    ranged = store.search(query, k=100, expr=f"{n} >= {literal(10)} and {n} < {literal(20.5)}")
    assert sorted(h.metadata["n"] for h in ranged[0]) == list(range(10, 21))
    caption = store.search(query, k=100, expr=f"caption == {quote_string('caption number 7')}")
    assert [h.id for h in caption[0]] == ["r0007"]
    text = store.search(query, k=100, expr=f"modality == {literal('text')}")[0]
    assert {h.id for h in text} == {r.id for r in records if r.modality is Modality.TEXT}
    assert store.search(query, k=5, expr=f"{label} == {literal('fish')}") == [[]]


def test_hostile_strings_are_literals_not_syntax(store: VectorStore) -> None:
    vectors = unit_vectors(len(HOSTILE) + 1, seed=3)
    ids = [f"id {text}" if "'" not in text else f"quoted {i}" for i, text in enumerate(HOSTILE)]
    records = [
        Record(id=ids[i], vector=vectors[i], source=f"/s/{i}", caption=text, metadata={"k": text})
        for i, text in enumerate(HOSTILE)
    ]
    records.append(Record(id="plain", vector=vectors[-1], source="/s/plain", caption="plain"))
    store.upsert(records)
    assert store.existing_ids([*ids, "absent"]) == set(ids)
    assert [r.id for r in store.get(ids)] == ids
    for i, text in enumerate(HOSTILE):
        metadata_k = field_ref("metadata", "k")
        for expr in (f"caption == {quote_string(text)}", f"{metadata_k} == {literal(text)}"):
            hits = store.search(vectors[0], k=50, expr=expr)[0]
            assert [h.id for h in hits] == [ids[i]], expr
        assert [h.id for h in store.search(vectors[0], expr=f"id == {literal(ids[i])}")[0]] == [
            ids[i]
        ]
    seen = [r.id for batch in store.iterate(batch_size=2, with_vectors=False) for r in batch]
    assert sorted(seen) == sorted([*ids, "plain"])
    store.delete(ids[:4])
    assert store.existing_ids(ids) == set(ids[4:])
    assert store.count() == len(HOSTILE) - 4 + 1


def test_ids_that_cannot_round_trip_are_refused(store: VectorStore) -> None:
    good = make_records(1)[0]
    for bad in ("it's", "tab\there", "nul\x00", "x" * 129):
        with pytest.raises(StoreError, match="not storable"):
            store.upsert([Record(bad, good.vector, good.source)])
    store.upsert([good])
    store.delete(["it's", good.id])  # unstorable ids are skipped, not sent to Milvus
    assert store.existing_ids(["it's"]) == set() and store.count() == 0


def test_delete_removes_rows(store: VectorStore) -> None:
    records = make_records(40)
    store.upsert(records)
    store.delete(["r0000", "r0001", "never-stored"])
    store.delete([])
    assert store.count() == 38
    assert store.existing_ids(["r0000", "r0001", "r0002"]) == {"r0002"}
    hits = store.search(records[0].vector, k=5)[0]
    assert "r0000" not in {h.id for h in hits}


def test_iterate_yields_every_record_once(store: VectorStore) -> None:
    records = make_records(57)
    store.upsert(records)
    batches = list(store.iterate(batch_size=10))
    assert [len(b) for b in batches] == [10, 10, 10, 10, 10, 7]
    flat = [r for batch in batches for r in batch]
    assert [r.id for r in flat] == sorted(r.id for r in records)
    assert all(r.vector.shape == (DIM,) for r in flat)
    assert flat[5].metadata == records[5].metadata
    light = next(store.iterate(batch_size=3, with_vectors=False))
    assert len(light) == 3 and light[0].vector.size == 0
    with pytest.raises(ConfigError):
        next(store.iterate(batch_size=0))


def test_flush_then_info_counts(store: VectorStore) -> None:
    store.upsert(make_records(25))
    store.flush()
    info = store.info()
    assert info.count == 25 and info.dim == DIM and info.model_id == MODEL


def test_drop_removes_the_collection(store: VectorStore) -> None:
    store.upsert(make_records(5))
    store.drop()
    assert not store.exists()
    store.drop()  # dropping twice is fine
    with pytest.raises(CollectionNotFoundError):
        store.count()
    with pytest.raises(CollectionNotFoundError):
        store.search(unit_vectors(1)[0])
    with pytest.raises(CollectionNotFoundError):
        store.info()


def test_bad_expression_fails_fast(store: VectorStore) -> None:
    store.upsert(make_records(5))
    started = time.monotonic()
    with pytest.raises(StoreError, match=r"(?i)expr|parse"):
        store.search(unit_vectors(1)[0], expr='metadata["label"] === "dog" or (')
    assert time.monotonic() - started < 10


def test_closed_store_refuses_calls(store_factory: StoreFactory) -> None:
    store = store_factory()
    store.close()
    store.close()  # idempotent
    with pytest.raises(StoreError, match="closed"):
        store.exists()


def test_index_types(store_factory: StoreFactory, backend: str) -> None:
    with pytest.raises(ConfigError, match="BOGUS"):
        store_factory(index_type="BOGUS")
    for index_type in ("IVF_FLAT", "AUTOINDEX"):  # FLAT and HNSW: see the other tests
        name = f"ix_{index_type.lower()}_{time.monotonic_ns()}"
        store = store_factory(name, index_type=index_type)
        store.ensure_collection(DIM, MODEL)
        assert store.info().index_type == index_type
        store.drop()
    if backend == "lite":
        with pytest.raises(ConfigError, match="HNSW"):
            store_factory(index_type="HNSW")


def test_unreachable_server_fails_fast() -> None:
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError, match=r"127\.0\.0\.1"):
        open_store(f"http://127.0.0.1:{closed_port()}", "mmrag")
    assert time.monotonic() - started < 10


def test_uri_rules(tmp_path: Path) -> None:
    assert is_local_uri("./mmrag.db") and is_local_uri("/abs/x.db")
    assert not is_local_uri("http://h:19530") and not is_local_uri("HTTPS://h")
    with pytest.raises(ConfigError, match=r"\.db"):
        open_store(str(tmp_path / "mmrag.sqlite"), "mmrag")
    with pytest.raises(ConfigError, match="36"):
        open_store(str(tmp_path / ("x" * 40 + ".db")), "mmrag")
    with pytest.raises(ConfigError, match="collection name"):
        open_store(str(tmp_path / "a.db"), "bad-name")
    with pytest.raises(ConfigError, match="empty"):
        open_store("  ", "mmrag")
    nested = tmp_path / "deep" / "er" / "m.db"
    store = open_store(str(nested), "mmrag")
    try:
        store.ensure_collection(DIM, MODEL)
        assert isinstance(store, MilvusStore) and store.info().index_type == "FLAT"
    finally:
        store.close()
    assert nested.is_file()


def test_lite_file_owned_by_another_process(tmp_path: Path) -> None:
    db = tmp_path / "owned.db"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from retrieval.stores.milvus import MilvusStore\n"
            f"s = MilvusStore({str(db)!r}, 'c')\n"
            "print('ready', flush=True)\n"
            "sys.stdin.read()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        with pytest.raises(StoreUnavailableError, match="another process"):
            MilvusStore(str(db), "c")
    finally:
        holder.communicate(input="", timeout=30)


@pytest.mark.server
def test_lite_and_server_agree_on_flat_search(
    milvus_server: EmbeddedServer, tmp_path: Path
) -> None:
    dim, count = 64, 2000
    records = make_records(count, dim=dim, seed=11)
    queries = unit_vectors(20, dim=dim, seed=12)
    results = {}
    name = f"congruence_{time.monotonic_ns()}"
    for label, uri in (("lite", str(tmp_path / "c.db")), ("server", milvus_server.uri)):
        with MilvusStore(uri, name, index_type="FLAT") as store:
            store.ensure_collection(dim, MODEL)
            assert store.upsert(records) == count
            store.flush()
            assert store.count() == count
            results[label] = store.search(queries, k=10)
            ids = [
                r.id for batch in store.iterate(batch_size=300, with_vectors=False) for r in batch
            ]
            assert ids == sorted(r.id for r in records)
            store.drop()
    print(f"embedded server started in {milvus_server.start_seconds:.1f}s")
    exact = np.argsort(-(queries @ np.stack([r.vector for r in records]).T), axis=1)[:, :10]
    for q in range(len(queries)):
        lite_hits, server_hits = results["lite"][q], results["server"][q]
        assert [h.id for h in lite_hits] == [h.id for h in server_hits]
        assert [h.id for h in lite_hits] == [records[i].id for i in exact[q]]
        np.testing.assert_allclose(
            [h.score for h in lite_hits], [h.score for h in server_hits], atol=1e-4
        )


def _segments_without_index(uri: str, name: str) -> list[int]:
    """Loaded segments big enough for the vector index that are served without it."""
    client = MilvusClient(uri=uri)
    try:
        segments = client.list_loaded_segments(name)
    finally:
        client.close()
    return [s.segment_id for s in segments
            if s.num_rows >= MIN_INDEXED_SEGMENT_ROWS and not s.index_id]


@pytest.mark.server
def test_server_hnsw_recall(milvus_server: EmbeddedServer) -> None:
    dim, count, k = 64, 5000, 10
    records = make_records(count, dim=dim, seed=21)
    matrix = np.stack([r.vector for r in records])
    queries = unit_vectors(50, dim=dim, seed=22)
    name = f"hnsw_{time.monotonic_ns()}"
    with MilvusStore(milvus_server.uri, name) as store:
        assert store.index_type == "HNSW"
        store.ensure_collection(dim, MODEL)
        store.upsert(records)
        store.flush()
        assert store.wait_until_indexed(timeout=60)  # searches now go through HNSW
        assert store.index_progress() == (count, count)
        # not only built: loaded with it (a segment loaded before its index is searched
        # through the interim IVF index, recall 0.528 here under load)
        assert _segments_without_index(milvus_server.uri, name) == []
        hits = store.search(queries, k=k)
        store.drop()
    exact = np.argsort(-(queries @ matrix.T), axis=1)[:, :k]
    found = sum(
        len({h.id for h in hits[q]} & {records[i].id for i in exact[q]})
        for q in range(len(queries))
    )
    recall = found / (k * len(queries))
    print(f"HNSW recall@{k} on {count} x {dim}: {recall:.3f}")
    assert recall >= 0.95


def test_large_upserts_are_split_into_bounded_calls(
    store: VectorStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(milvus_rows, "BATCH_BYTES", 5_000)  # Milvus Lite
    monkeypatch.setattr(milvus_rows, "SERVER_BATCH_BYTES", 5_000)  # a server
    records = make_records(300)
    chunks = list(
        milvus_rows.chunks_by_size(
            [
                {"id": r.id, "source": r.source, "caption": r.caption, "metadata": dict(r.metadata)}
                for r in records
            ],
            DIM,
        )
    )
    assert len(chunks) > 5 and sum(len(c) for c in chunks) == 300
    assert store.upsert(records) == 300
    assert store.count() == 300


def test_pure_helpers() -> None:
    assert milvus_rows.truncate_utf8("abc", 10) == "abc"
    assert milvus_rows.truncate_utf8("ééé", 5) == "éé"  # never half a character
    assert milvus_rows.truncate_utf8("a🐕", 4) == "a"
    assert milvus_rows.resolve_index_type("auto", local=True) == "FLAT"
    assert milvus_rows.resolve_index_type("auto", local=False) == "HNSW"
    assert milvus_rows.resolve_index_type("hnsw", local=False) == "HNSW"
    with pytest.raises(ConfigError, match="IVF_FLAT"):
        milvus_rows.resolve_index_type("HNSW", local=True)
    with pytest.raises(ConfigError):
        milvus_rows.resolve_index_type("DISKANN", local=False)
    assert milvus_rows.redact_uri("https://user:pw@host:19530") == "https://***@host:19530"
    assert milvus_rows.redact_uri("http://host:19530") == "http://host:19530"


def test_dead_backend_fails_within_the_call_timeout(tmp_path: Path) -> None:
    psutil = pytest.importorskip("psutil")
    db = tmp_path / "dies.db"
    store = MilvusStore(str(db), "c", timeout=2.0)
    try:
        store.ensure_collection(DIM, MODEL)
        [lite] = [
            child
            for child in psutil.Process().children(recursive=True)
            if str(db) in " ".join(child.cmdline())
        ]
        lite.kill()
        lite.wait(timeout=10)
        started = time.monotonic()
        with pytest.raises(StoreUnavailableError):
            store.count()
        assert time.monotonic() - started < 10  # pymilvus alone would retry 75 times
    finally:
        store.close()


def test_lite_file_shared_by_two_stores_in_one_process(tmp_path: Path) -> None:
    db = str(tmp_path / "shared.db")
    first, second = MilvusStore(db, "first"), MilvusStore(db, "second")
    try:
        first.ensure_collection(DIM, MODEL)
        second.ensure_collection(DIM, "test/model-b")
        first.upsert(make_records(3))
        first.close()  # the Lite process stays up while `second` uses it
        second.upsert(make_records(4))
        assert second.count() == 4
    finally:
        first.close()
        second.close()
    with MilvusStore(db, "first") as reopened:  # and restarts on demand, data intact
        assert reopened.count() == 3 and reopened.info().model_id == MODEL


def test_list_collections_names_this_collection(store_factory: StoreFactory) -> None:
    """The store lists the collections behind its URI, including its own once created."""
    store = store_factory()
    assert store.collection not in store.list_collections()
    store.ensure_collection(DIM, MODEL)
    assert store.collection in store.list_collections()
