"""mmrag collections, stats and models, and read-only commands that create nothing."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.console import Console

from mmrag.cli import main
from mmrag.hit_table import HitRow, hit_table
from retrieval.stores import open_store

TINY_DIM = 32


def _flags(db: Path, collection: str, tiny_model_files: tuple[Path, Path]) -> list[str]:
    config, checkpoint = tiny_model_files
    return ["--uri", str(db), "--collection", collection, "--model", str(config),
            "--pretrained", "", "--checkpoint", str(checkpoint), "--device", "cpu"]


def test_collections_and_stats_describe_what_is_stored(
    tmp_path: Path, tiny_model_files: tuple[Path, Path],
    make_image_files: Callable[..., list[Path]], capsys: pytest.CaptureFixture[str],
) -> None:
    db = tmp_path / "cat.db"
    files = make_image_files(3)
    flags = _flags(db, "one", tiny_model_files)
    assert main(["ingest", str(files[0].parent), "--quiet", *flags]) == 0
    with open_store(str(db), "empty") as store:
        store.ensure_collection(TINY_DIM, "some-model/tag")
    capsys.readouterr()

    assert main(["collections", "--json", *_flags(db, "one", tiny_model_files)]) == 0
    listed = {c["name"]: c for c in json.loads(capsys.readouterr().out)["collections"]}
    assert set(listed) == {"one", "empty"}
    assert (listed["one"]["count"], listed["one"]["dimension"], listed["one"]["default"]) == (
        3, TINY_DIM, True)
    assert listed["empty"]["count"] == 0 and listed["empty"]["default"] is False
    assert listed["one"]["model"].startswith("mmrag-test-tiny")

    assert main(["collections", *_flags(db, "one", tiny_model_files)]) == 0
    table = capsys.readouterr().out
    assert "one" in table and "empty" in table and "mmrag-test-tiny" in table
    assert "* the configured collection (one)" in table

    assert main(["stats", "--json", *_flags(db, "one", tiny_model_files)]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert (stats["name"], stats["count"], stats["dimension"]) == ("one", 3, TINY_DIM)
    assert stats["model_flags"].startswith("--model ")
    assert {"source", "modality"} <= {f["name"] for f in stats["fields"]}

    assert main(["stats", *_flags(db, "one", tiny_model_files)]) == 0
    human = capsys.readouterr().out
    assert "one: 3 items" in human and "fields for --filter" in human

    assert main(["stats", *_flags(db, "empty", tiny_model_files)]) == 0
    assert "the collection is empty: add images with mmrag ingest FOLDER" in (
        capsys.readouterr().out)

    assert main(["stats", *_flags(db, "nope", tiny_model_files)]) == 2
    err = capsys.readouterr().err
    assert f"no collection 'nope' at {db}; run mmrag ingest first" in err
    assert "collections there: empty, one" in err


@pytest.mark.parametrize("command", ["collections", "stats"])
def test_read_only_commands_create_no_file_or_folder(
    tmp_path: Path, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no" / "such" / "x.db"
    assert main([command, "--uri", str(missing)]) == 2
    err = capsys.readouterr().err
    assert f"no collection 'mmrag' at {missing}; run mmrag ingest first" in err
    assert "the file does not exist" in err
    assert not (tmp_path / "no").exists()


def test_models_lists_builtin_and_open_clip_names_with_tags(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["models", "--json"]) == 0
    catalogue = json.loads(capsys.readouterr().out)
    demo = next(m for m in catalogue["builtin"] if m["model"] == "mmrag-demo")
    assert demo["weights_present"] and demo["checkpoint"].endswith(".safetensors")
    tags = {m["model"]: m["pretrained"] for m in catalogue["open_clip"]}
    assert "laion2b_s34b_b79k" in tags["ViT-B-32"] and "openai" in tags["ViT-B-16"]

    assert main(["models", "vit-b-32", "--model", "ViT-B-32"]) == 0
    out = capsys.readouterr().out
    assert "laion2b_s34b_b79k" in out and "mmrag-demo" not in out.split("* configured")[0]
    assert "* configured: --model ViT-B-32" in out


@pytest.mark.parametrize("width", [60, 80, 120])
def test_hit_tables_fit_the_terminal_and_keep_the_file_name(width: int) -> None:
    long_path = "/home/someone/Pictures/holidays/2024/summer/at-the-beach/IMG_20240801_1234.jpg"
    rows = [HitRow(str(i), -0.1234, "f" * 32, long_path, "a caption " * 12) for i in (1, 10)]
    console = Console(width=width)
    with console.capture() as captured:
        console.print(hit_table(rows, width))
    lines = captured.get().splitlines()
    assert max(map(len, lines)) <= width
    assert sum("IMG_20240801_1234.jpg" in line for line in lines) == 2
    assert sum("-0.1234" in line for line in lines) == 2
