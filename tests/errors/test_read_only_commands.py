"""Read-only commands create nothing (#17.4): a missing file or collection is said, with what
exists and what to run; an empty collection says it is empty; no client method name is shown."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from mmrag.cli import main
from retrieval.errors import CollectionNotFoundError
from retrieval.stores import open_store
from retrieval.types import Record
from tests.support.tiny_model import tiny_model_settings

REPO = Path(__file__).resolve().parents[2]


def test_search_on_a_missing_file_creates_nothing(tmp_path: Path) -> None:
    db = tmp_path / "nonexistent" / "dir" / "x.db"
    env = {**os.environ, "COLUMNS": "200"}
    done = subprocess.run(
        [sys.executable, "-m", "mmrag", "search", "a cat", "--uri", str(db)],
        cwd=REPO, capture_output=True, text=True, env=env, timeout=600,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (
        f"mmrag search: error: no collection 'mmrag' at {db}; run mmrag ingest first "
        "(the file does not exist)"
    )
    assert not (tmp_path / "nonexistent").exists()


@pytest.mark.parametrize(
    "argv",
    [["ask", "what is red?"], ["eval", "QUERIES"], ["stats"], ["collections"]],
    ids=["ask", "eval", "stats", "collections"],
)
def test_every_reader_on_a_missing_file_creates_nothing(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    queries = tmp_path / "queries.jsonl"
    queries.write_text('{"query": "red", "relevant": ["a"]}\n', encoding="utf-8")
    db = tmp_path / "missing" / "x.db"
    args = [str(queries) if arg == "QUERIES" else arg for arg in argv]
    assert main([*args, "--uri", str(db)]) == 2
    error = capsys.readouterr().err
    assert f"no collection 'mmrag' at {db}; run mmrag ingest first" in error, error
    assert not db.parent.exists()


@pytest.fixture
def two_collections(tmp_path: Path, tiny_embedder) -> Path:
    """A Lite file with 'photos' (one item) and 'empty' (none), built with the tiny model."""
    db = tmp_path / "two.db"
    vector = tiny_embedder.embed_texts(["a red square"])[0]
    for name, records in (("photos", 1), ("empty", 0)):
        with open_store(str(db), name) as store:
            store.ensure_collection(tiny_embedder.dim, tiny_embedder.model_id)
            store.upsert([Record(id="a", vector=vector, source="a.jpg")][:records])
    return db


def test_a_missing_collection_names_those_there_and_an_empty_one_says_so(
    two_collections: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = two_collections
    assert main(["search", "a cat", "--uri", str(db)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"mmrag search: error: no collection 'mmrag' at {db}; run mmrag ingest first "
        "(collections there: empty, photos; choose one with --collection NAME)"
    )
    assert main(["search", "a cat", "--uri", str(db), "--collection", "empty"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"mmrag search: error: collection 'empty' at {db} is empty; add images with "
        "mmrag ingest FOLDER (--collection empty)"
    )


def test_store_calls_never_show_client_method_names(two_collections: Path) -> None:
    with open_store(str(two_collections), "ghost") as store, pytest.raises(
        CollectionNotFoundError
    ) as caught:
        store.info()
    message = str(caught.value)
    assert message == f"no collection 'ghost' at {two_collections}; run mmrag ingest first"
    assert "describe_collection" not in message


def test_serve_on_a_missing_file_waits_for_ingest_without_creating_it(
    tmp_path: Path, tiny_model_files: tuple[Path, Path], tiny_embedder
) -> None:
    from retrieval.api import create_app

    db = tmp_path / "later" / "x.db"
    settings = tiny_model_settings(tiny_model_files, db, "items")
    with TestClient(create_app(settings)) as client:
        search = client.post("/search", json={"query": "a red square"})
        assert search.status_code == 404, search.text
        assert search.json()["error"]["message"] == (
            f"no collection 'items' at {db}; run mmrag ingest first (the file does not exist)"
        )
        ready = client.get("/ready")
        assert ready.status_code == 503 and "mmrag ingest" in ready.text
        assert not db.parent.exists()
        db.parent.mkdir()  # what mmrag ingest does, from this process (Lite has one owner)
        vector = tiny_embedder.embed_texts(["a red square"])[0]
        with open_store(str(db), "items") as store:
            store.ensure_collection(tiny_embedder.dim, tiny_embedder.model_id)
            store.upsert([Record(id="a", vector=vector, source="a.jpg")])
            found = client.post("/search", json={"query": "a red square"})
        assert found.status_code == 200, found.text
        assert [hit["id"] for hit in found.json()["hits"]] == ["a"]
