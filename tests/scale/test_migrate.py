"""mmrag migrate: Lite -> server (and Lite -> Lite), resumable, verified, model-checked."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mmrag.cli import main as mmrag_main
from retrieval.migrate import MIN_COSINE, copy_collection
from retrieval.stores.milvus import MilvusStore
from tests.contract.helpers import DIM, MODEL, EmbeddedServer, make_records

SPEC = {"model": "test-model", "pretrained": "tag", "checkpoint": None}


def _lite(tmp_path: Path, name: str = "photos", count: int = 1200) -> str:
    uri = str(tmp_path / "src.db")
    with MilvusStore(uri, name) as store:
        store.ensure_collection(DIM, MODEL, spec=SPEC)
        store.upsert(make_records(count, seed=5))
        store.flush()
    return uri


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict]:
    code = mmrag_main(list(argv))
    out = capsys.readouterr().out.strip().splitlines()
    return code, json.loads(out[-1]) if out and out[-1].startswith("{") else {}


@pytest.mark.server
def test_lite_to_server_resumes_and_verifies(
    tmp_path: Path, milvus_server: EmbeddedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _lite(tmp_path)
    target = f"migrated_{tmp_path.name[-8:].replace('-', '_')}"
    with MilvusStore(milvus_server.uri, target) as partial:  # an interrupted earlier run
        partial.ensure_collection(DIM, MODEL)
        partial.upsert(make_records(1200, seed=5)[:500])
    argv = ["migrate", "--from", src, "--to", milvus_server.uri, "--collection", "photos",
            "--to-collection", target, "--batch-size", "256", "--json"]
    code, report = _run(capsys, *argv)
    assert code == 0, report
    assert (report["copied"], report["skipped"]) == (700, 500)
    assert report["source_count"] == report["target_count"] == 1200
    assert report["verified"] and report["sampled"] == 200 and report["min_cosine"] >= MIN_COSINE
    code, again = _run(capsys, *argv)  # a rerun copies nothing
    assert code == 0 and (again["copied"], again["skipped"]) == (0, 1200)
    with MilvusStore(milvus_server.uri, target) as store, MilvusStore(src, "photos") as lite:
        assert store.info().index_type == "HNSW"  # auto on a server
        query = make_records(1200, seed=5)[7].vector[None, :]
        assert [h.id for h in store.search(query, k=5)[0]] == [
            h.id for h in lite.search(query, k=5)[0]
        ]
        store.drop()


@pytest.mark.server
def test_migrate_refuses_a_target_of_another_model(
    tmp_path: Path, milvus_server: EmbeddedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _lite(tmp_path, count=10)
    target = f"other_{tmp_path.name[-8:].replace('-', '_')}"
    with MilvusStore(milvus_server.uri, target) as other:
        other.ensure_collection(DIM, "test/another-model")
        try:
            code = mmrag_main(["migrate", "--from", src, "--to", milvus_server.uri,
                               "--collection", "photos", "--to-collection", target])
            assert code == 2
            assert "another-model" in capsys.readouterr().err
            assert other.count() == 0
        finally:
            other.drop()


def test_lite_to_lite_records_the_model_spec(tmp_path: Path) -> None:
    src = _lite(tmp_path, count=300)
    with MilvusStore(src, "photos") as source, MilvusStore(
        str(tmp_path / "dst.db"), "copy"
    ) as target:
        report = copy_collection(source, target, batch_size=64, sample=50, seed=1)
        assert report.verified and (report.copied, report.target_count) == (300, 300)
        assert target.model_spec() == SPEC
        changed = target.get(["r0003"], with_vectors=True)[0]
        flipped = np.asarray(changed.vector)[::-1].copy()
        target.upsert([type(changed)(**{**changed.__dict__, "vector": flipped})])
        target.delete(["r0004"])
        report = copy_collection(source, target, batch_size=64, sample=300, seed=1)
        assert report.copied == 1 and not report.missing  # the deleted row is copied again
        assert report.mismatched == ["r0003"] and not report.verified  # rows are not replaced


def test_migrate_refuses_the_same_collection(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = str(tmp_path / "same.db")
    assert mmrag_main(["migrate", "--from", src, "--to", src, "--collection", "x"]) == 2
    assert "same collection" in capsys.readouterr().err
