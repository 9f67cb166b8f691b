"""The first vertical slice: a folder of real image files -> ingest -> Milvus Lite -> search."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ingest import IngestOptions, run_ingest
from ingest.sources import open_source
from mmrag.cli import main
from retrieval.components import Components, build_components
from retrieval.config import Settings
from retrieval.embedders.base import Embedder
from retrieval.errors import ModelMismatchError
from retrieval.imaging import decode_image
from retrieval.search import Searcher, SearchRequest
from tests.support.tiny_model import tiny_model_settings


@pytest.fixture
def settings(tmp_path: Path, tiny_model_files: tuple[Path, Path]) -> Settings:
    """Settings pointing at a fresh Milvus Lite file and the tiny model's files."""
    return tiny_model_settings(tiny_model_files, tmp_path / "slice.db", "slice", batch_size=4)


@pytest.fixture
def components(settings: Settings, tiny_embedder: Embedder) -> Components:
    """Components whose embedder is the session's tiny model."""
    comps = build_components(settings)
    comps._embedder = tiny_embedder
    yield comps
    comps.close()


def test_ingest_stores_unit_vectors_and_finds_each_image_first(
    components: Components, make_image_files
) -> None:
    files = make_image_files(10)
    summary = run_ingest(components, open_source(files[0].parent), IngestOptions(batch_size=4))
    assert (summary.ingested, summary.duplicates, summary.rejected) == (10, 0, 0)
    store = components.store
    assert store.count() == 10

    records = [r for batch in store.iterate(100) for r in batch]
    norms = np.linalg.norm(np.stack([r.vector for r in records]), axis=1)
    assert np.allclose(norms, 1.0, atol=1e-5)
    assert {r.source for r in records} == {str(f.resolve()) for f in files}

    searcher = Searcher(components.embedder, store)
    for path in files:
        hits = searcher.search_image(decode_image(path.read_bytes()), SearchRequest(k=3))
        assert hits[0].source == str(path.resolve())
        assert hits[0].score == pytest.approx(1.0, abs=1e-4)


def test_reingest_adds_nothing_and_same_bytes_stored_once(
    components: Components, make_image_files, tmp_path: Path
) -> None:
    files = make_image_files(6)
    folder = files[0].parent
    (folder / "copy").mkdir()
    (folder / "copy" / "again.jpg").write_bytes(files[0].read_bytes())
    first = run_ingest(components, open_source(folder))
    assert (first.ingested, first.duplicates) == (6, 1)
    second = run_ingest(components, open_source(folder))
    assert (second.ingested, second.duplicates) == (0, 7)
    assert components.store.count() == 6


def test_bad_files_are_rejected_without_stopping_the_job(
    components: Components, make_image_files
) -> None:
    files = make_image_files(4)
    folder = files[0].parent
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.jpg").write_text("this is not an image")
    (folder / "truncated.jpg").write_bytes(files[1].read_bytes()[:200])
    summary = run_ingest(components, open_source(folder))
    assert summary.ingested == 4
    assert summary.rejected == 3
    reasons = {Path(r.source).name: r.reason for r in summary.rejects}
    assert set(reasons) == {"empty.jpg", "notes.jpg", "truncated.jpg"}
    assert all(reasons.values())


def test_collection_refuses_another_model(components: Components, make_image_files) -> None:
    files = make_image_files(2)
    run_ingest(components, open_source(files[0].parent))
    with pytest.raises(ModelMismatchError) as err:
        components.store.ensure_collection(components.embedder.dim, "other-model/xyz")
    assert "other-model/xyz" in str(err.value)
    assert components.embedder.model_id in str(err.value)


def test_cli_ingest_then_search_json(
    settings: Settings, make_image_files, capsys: pytest.CaptureFixture[str]
) -> None:
    files = make_image_files(5)
    flags = [
        "--uri", settings.uri, "--collection", settings.collection,
        "--model", settings.model, "--pretrained", "", "--checkpoint", str(settings.checkpoint),
        "--device", "cpu",
    ]
    assert main(["ingest", str(files[0].parent), "--json", *flags]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["ingested"] == 5
    assert main(["ingest", str(files[0].parent), "--json", *flags]) == 0
    assert json.loads(capsys.readouterr().out)["ingested"] == 0

    assert main(["search", "--image", str(files[2]), "-k", "3", "--json", *flags]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert hits[0]["source"] == str(files[2].resolve())
    assert main(["search", "a photo", "-k", "5", "--json", *flags]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 5


def test_cli_reports_user_errors_in_one_line(
    settings: Settings, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code = main(["ingest", str(tmp_path / "missing"), "--uri", settings.uri])
    assert code == 2
    assert "does not exist" in capsys.readouterr().err
