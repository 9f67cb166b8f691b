"""`mmrag demo`: end to end with the demo model, idempotent, and careful with foreign folders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mmrag.cli import main
from retrieval.stores import open_store
from tests.semantic.conftest import WEIGHTS_ENV


def demo(folder: Path, count: int) -> list[str]:
    """The demo's argv (with the weights override of the semantic tests, when set)."""
    argv = ["demo", "--dir", str(folder), "--count", str(count), "--device", "cpu"]
    override = os.environ.get(WEIGHTS_ENV)
    return argv + (["--checkpoint", override] if override else [])


def stored(folder: Path) -> int:
    store = open_store(str(folder / "demo.db"), "demo")
    try:
        return store.count()
    finally:
        store.close()


def test_demo_runs_end_to_end_and_reruns_without_ingesting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "demo-data"
    assert main(demo(folder, 60)) == 0
    out = capsys.readouterr().out
    assert "generated 60 demo images" in out and "ingested 60, already stored 0" in out
    for expected in ('"a red circle"', '"a yellow circle" (held out', "4. Image search",
                     "cited items show an orange cross", "text→image (", "image→image (",
                     f"MMRAG_URI={folder / 'demo.db'} MMRAG_COLLECTION=demo MMRAG_MODEL=mmrag-demo",
                     "http://127.0.0.1:8000/docs"):
        assert expected in out, expected
    assert (folder / "manifest.csv").is_file() and (folder / "queries.jsonl").is_file()
    assert stored(folder) == 60

    assert main(demo(folder, 60)) == 0
    again = capsys.readouterr().out
    assert "reusing 60 demo images" in again
    assert "ingest added nothing: all 60 images were already stored" in again
    assert stored(folder) == 60

    assert main(demo(folder, 45)) == 0  # another size: regenerated and re-ingested from scratch
    assert "generated 45 demo images" in capsys.readouterr().out
    assert stored(folder) == 45


def test_demo_refuses_a_folder_it_did_not_make(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "manifest.csv").write_text("path\nmine.jpg\n", encoding="utf-8")
    assert main(["demo", "--dir", str(tmp_path), "--count", "5"]) == 2
    assert "not an mmrag demo folder" in capsys.readouterr().err
    assert (tmp_path / "manifest.csv").read_text(encoding="utf-8") == "path\nmine.jpg\n"
