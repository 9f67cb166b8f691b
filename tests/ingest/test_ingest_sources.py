"""Sources without the model: folder walks, manifests, metadata mapping, ids and shards."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ingest.manifest import ManifestSource
from ingest.metadata import InvalidIdError, check_id, json_value, row_metadata, sanitize_keys
from ingest.shard import Shard
from ingest.sources import DirectorySource, SourceItem, open_source
from retrieval.errors import ConfigError


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_folder_walk_is_recursive_sorted_case_insensitive_and_finds_videos(tmp_path: Path) -> None:
    root = tmp_path / "media"
    names = ["b.JPG", "a.jpeg", "c.Png", "d.webp", "e.bmp", "f.GIF", "g.tif", "h.TIFF",
             "sub/deeper/x.jpg", "sub/clip.MP4", "sub/m.avi", "sub/n.mov", "sub/o.mkv",
             "sub/p.webm"]
    for name in names:
        touch(root / name)
    for ignored in ("notes.docx", "sub/readme.rst", "raw.cr2", "noext"):
        touch(root / ignored)
    for document in ("notes.txt", "sub/readme.MD"):  # text documents (#18.1): passage rows
        touch(root / document)
    listed = list(open_source(root))
    skipped = {i.key: i.skipped for i in listed if i.skipped is not None}  # counted, not read
    assert skipped == {"notes.docx": ".docx", "sub/readme.rst": ".rst", "raw.cr2": ".cr2",
                       "noext": "(no extension)"}
    documents = {i.key: i.kind for i in listed if i.kind == "text"}
    assert documents == {"notes.txt": "text", "sub/readme.MD": "text"}
    listed = [i for i in listed if i.kind != "text"]
    items = [i for i in listed if i.skipped is None]
    rel = [Path(i.source).relative_to(root.resolve()).as_posix() for i in items]
    assert rel == ["a.jpeg", "b.JPG", "c.Png", "d.webp", "e.bmp", "f.GIF", "g.tif", "h.TIFF",
                   "sub/clip.MP4", "sub/deeper/x.jpg", "sub/m.avi", "sub/n.mov", "sub/o.mkv",
                   "sub/p.webm"]
    kinds = {r: i.kind for r, i in zip(rel, items, strict=True)}
    assert kinds["sub/clip.MP4"] == "video" and kinds["sub/p.webm"] == "video"
    assert kinds["a.jpeg"] == "file"
    assert all(i.key == r for i, r in zip(items, rel, strict=True))
    assert DirectorySource(root).count() == len(names) + len(documents)


def test_broken_symlinks_and_fifos_are_listed_to_be_rejected(tmp_path: Path) -> None:
    root = tmp_path / "media"
    touch(root / "ok.jpg")
    (root / "gone.jpg").symlink_to(root / "missing-target.jpg")
    os.mkfifo(root / "pipe.jpg")  # listed, then rejected by the read (which never blocks on it)
    names = [Path(i.source).name for i in open_source(root)]
    assert names == ["gone.jpg", "ok.jpg", "pipe.jpg"]


def test_missing_or_unsupported_source_fails_with_its_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        open_source(tmp_path / "nope")
    other = touch(tmp_path / "file.xyz")
    with pytest.raises(ConfigError, match=r"file\.xyz"):
        open_source(other)


def test_single_image_or_video_file_is_a_source(tmp_path: Path) -> None:
    image = touch(tmp_path / "one.jpg")
    video = touch(tmp_path / "clip.mkv")
    assert [(i.source, i.kind) for i in open_source(image)] == [(str(image.resolve()), "file")]
    assert [i.kind for i in open_source(video)] == ["video"]


def test_towhee_example_csv_works_as_is(tmp_path: Path) -> None:
    manifest = tmp_path / "reverse_image_search.csv"
    manifest.write_text(
        "id,path,label\n"
        "0,./train/brain_coral/n01917289_1783.JPEG,brain_coral\n"
        "1,./train/brain_coral/n01917289_4317.JPEG,brain_coral\n"
        "2,./train/goldfish/n01443537_1415.JPEG,goldfish\n"
    )
    items = list(open_source(manifest))
    assert [i.id for i in items] == ["0", "1", "2"]
    assert items[0].source == str(tmp_path / "train/brain_coral/n01917289_1783.JPEG")
    assert [i.metadata for i in items] == [
        {"label": "brain_coral"}, {"label": "brain_coral"}, {"label": "goldfish"}
    ]
    assert all(i.kind == "file" and i.error is None for i in items)


def test_csv_types_ids_captions_urls_and_row_rejects(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "ID,Path,url,caption,label,n,score,flag,taken on,2nd\n"
        "007,a.jpg,,a dog,dog,3,0.5,True,2024-01-05,x\n"
        ",,https://example.org/b.png,,cat,,1.5,False,2024-02-01,\n"
        "bad id!,c.jpg,,,cat,1,,,,\n"
        "9,,,,cat,1,,,,\n"
        "10,,ftp://example.org/x.jpg,,cat,1,,,,\n"
        "11,sub/v.MOV,,,cat,1,,,,\n"
        "12,/abs/e.jpg,,,cat,1,,,,,extra\n"
    )
    source = ManifestSource(manifest)
    items = list(source)
    assert source.count() == len(items) == 7
    bad_line, first, second, bad_id, empty, ftp, video = items
    assert bad_line.error is not None and "line 8" in bad_line.source + bad_line.error
    assert bad_line.stage == "manifest"
    assert first.id == "007" and first.caption == "a dog"
    assert first.source == str(tmp_path / "a.jpg") and first.kind == "file"
    assert first.metadata == {
        "label": "dog", "n": 3, "score": 0.5, "flag": True, "taken_on": "2024-01-05", "_2nd": "x"
    }
    assert isinstance(first.metadata["n"], int)
    assert second.id is None and second.kind == "url"
    assert second.source == "https://example.org/b.png"
    assert second.metadata == {"label": "cat", "score": 1.5, "flag": False,
                               "taken_on": "2024-02-01"}
    assert bad_id.error is not None and "invalid id" in bad_id.error
    assert empty.error is not None and "empty path/url" in empty.error
    assert ftp.error is not None and "ftp" in ftp.error
    assert video.kind == "video" and video.error is None


def test_parquet_keeps_types_and_writes_dates_as_iso(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "path": ["a.jpg", "b.jpg"],
            "id": [1, 2],
            "when": pd.to_datetime(["2024-03-01 10:30", None]),
            "count": pd.array([5, None], dtype="Int64"),
            "ratio": [0.25, float("nan")],
            "ok": [True, False],
            "tags": [["x", "y"], []],
        }
    )
    manifest = tmp_path / "m.parquet"
    frame.to_parquet(manifest)
    first, second = list(open_source(manifest))
    assert first.id == "1" and second.id == "2"
    assert first.metadata == {
        "when": "2024-03-01T10:30:00", "count": 5, "ratio": 0.25, "ok": True, "tags": ["x", "y"]
    }
    assert second.metadata == {"ok": False, "tags": []}


def test_tsv_and_jsonl_with_bad_lines(tmp_path: Path) -> None:
    tsv = tmp_path / "m.tsv"
    tsv.write_text("path\tlabel\na.jpg\tdog\n")
    assert [i.metadata for i in open_source(tsv)] == [{"label": "dog"}]
    jsonl = tmp_path / "m.jsonl"
    jsonl.write_text(
        json.dumps({"url": "http://h/a.jpg", "id": 5, "meta": {"k": 1}}) + "\n"
        "{not json\n"
        "\n"
        "[1, 2]\n"
        + json.dumps({"path": "b.jpg", "caption": "B"}) + "\n"
    )
    items = list(open_source(jsonl))
    assert [i.error is not None for i in items] == [True, True, False, False]
    assert {i.source for i in items[:2]} == {f"{jsonl}:2", f"{jsonl}:4"}
    assert items[2].id == "5" and items[2].metadata == {"meta": {"k": 1}}
    assert items[3].caption == "B" and items[3].id is None


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("empty.csv", b"", "empty"),
        ("cols.csv", b"file,label\na.jpg,dog\n", "no 'path', 'url' or 'text' column"),
        ("junk.parquet", b"this is not parquet", "cannot read manifest"),
        ("junk.jsonl", b"nope\nstill nope\n", "no line is a JSON object"),
    ],
)
def test_unreadable_manifest_fails_at_once_naming_the_file(
    tmp_path: Path, name: str, content: bytes, problem: str
) -> None:
    manifest = tmp_path / name
    manifest.write_bytes(content)
    with pytest.raises(ConfigError) as err:
        open_source(manifest)
    assert str(manifest) in str(err.value)
    assert problem in str(err.value)


def test_metadata_values_and_keys() -> None:
    keys = sanitize_keys(["label", "taken on", "2nd", "a-b", "a_b", "", "ünï"])
    assert keys == {"label": "label", "taken on": "taken_on", "2nd": "_2nd", "a-b": "a_b",
                    "a_b": "a_b_2", "": "column_5", "ünï": "_n_"}
    row = {
        "label": "dog", "taken on": pd.Timestamp("2024-01-02T03:04:05", tz="Europe/Paris"),
        "2nd": np.int64(7), "a-b": float("nan"), "a_b": None, "": np.float32(1.5), "ünï": pd.NA,
    }
    assert row_metadata(row, keys) == {
        "label": "dog", "taken_on": "2024-01-02T02:04:05+00:00", "_2nd": 7, "column_5": 1.5
    }
    assert json_value(dt.date(2024, 5, 6)) == "2024-05-06"
    assert json_value(np.bool_(True)) is True
    dropped = json_value(math.inf)
    assert dropped is json_value(None)


@pytest.mark.parametrize("good", ["0", "007", "a.b:c-d_e", "x" * 128, 5, 5.0])
def test_valid_ids(good: object) -> None:
    assert check_id(good) == str(good).removesuffix(".0")


@pytest.mark.parametrize("bad", ["", "a b", "x" * 129, "é", "a/b", "it's", 1e300])
def test_invalid_ids(bad: object) -> None:
    with pytest.raises(InvalidIdError):
        check_id(bad)


def test_shards_partition_keys_deterministically() -> None:
    keys = [f"dir/img_{i:04d}.jpg" for i in range(600)]
    shards = [Shard.parse(f"{i}/3") for i in range(3)]
    owned = [{k for k in keys if s.owns(k)} for s in shards]
    assert set().union(*owned) == set(keys)
    assert sum(len(o) for o in owned) == len(keys)
    assert all(150 < len(o) < 250 for o in owned)
    assert owned == [{k for k in keys if s.owns(k)} for s in shards]  # stable
    assert Shard().owns("anything") and Shard.parse(" 0 / 1 ").count == 1


@pytest.mark.parametrize("text", ["3/3", "-1/3", "1/0", "a/b", "1", "", "1/2/3"])
def test_bad_shard_specs(text: str) -> None:
    with pytest.raises(ConfigError, match="shard"):
        Shard.parse(text)


def test_manifest_shards_split_rows_by_id_or_path(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("id,path\n" + "".join(f"{i},img{i}.jpg\n" for i in range(90)))
    parts = [list(ManifestSource(manifest, Shard(i, 3))) for i in range(3)]
    ids = [str(i.id) for part in parts for i in part]
    assert sorted(ids, key=int) == [str(i) for i in range(90)]
    assert [ManifestSource(manifest, Shard(i, 3)).count() for i in range(3)] == [
        len(p) for p in parts
    ]


def test_source_item_defaults() -> None:
    item = SourceItem(source="/x.jpg")
    assert (item.kind, item.caption, dict(item.metadata), item.id, item.error) == (
        "file", "", {}, None, None
    )


def test_unlistable_subfolder_becomes_a_reject_and_unlistable_root_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "media"
    touch(root / "a.jpg")
    touch(root / "locked" / "b.jpg")
    touch(root / "z.jpg")
    real_scandir = os.scandir

    def scandir(path: Any) -> Any:
        if str(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    items = list(open_source(root))
    assert [Path(i.source).name for i in items] == ["a.jpg", "locked", "z.jpg"]
    assert items[1].error is not None and "locked/" in items[1].error
    with pytest.raises(ConfigError, match="cannot list source folder"):
        open_source(root / "locked")
