"""mmrag sync / ingest --sync on real files and a real Milvus Lite file (and the embedded
server): new files are added, renamed and moved files keep their ids and vectors, deleted
files' rows go, and nothing outside the folder (not even a LIKE look-alike) is touched."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from ingest.sync import run_sync
from mmrag.cli import main
from retrieval.components import build_components
from retrieval.config import Settings
from retrieval.embedders.base import Embedder
from retrieval.types import Record
from tests.living.conftest import write_png
from tests.support.images import make_test_image
from tests.support.tiny_model import tiny_model_settings

Rows = Callable[[], dict[str, Record]]


def write_video(path: Path) -> Path:
    """A 2 s, 10 fps MJPG video (its frames sampled every 2 s by ingest)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (48, 32))
    for index in range(20):
        writer.write(cv2.cvtColor(make_test_image(300 + index, 32, 48), cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def by_source(rows: dict[str, Record]) -> dict[str, str]:
    """source -> id."""
    return {r.source: r.id for r in rows.values()}


def test_sync_adds_moves_removes_and_leaves_other_folders_alone(
    tmp_path: Path, cli_flags: list[str], read_rows: Rows, capsys: pytest.CaptureFixture[str]
) -> None:
    assert read_rows() == {}  # opens the store: the commands below share its Lite server
    lib = tmp_path / "my_lib"
    look_alike = tmp_path / "myXlib"  # LIKE's "_" matches the X: must stay untouched
    neighbour = tmp_path / "my_lib2"  # the same prefix without the separator
    for i in range(4):
        write_png(lib / "a" / f"p{i}.png", i)
    write_video(lib / "clips" / "v.avi")
    (lib / "notes.psd").write_bytes(b"not ingested")
    write_png(look_alike / "s.png", 50)
    write_png(neighbour / "n.png", 51)
    for folder in (look_alike, neighbour):
        assert main(["ingest", str(folder), "--quiet", *cli_flags]) == 0
    assert main(["sync", str(lib), *cli_flags]) == 0
    out = capsys.readouterr().out
    before = read_rows()
    frames = {i: r for i, r in before.items() if "#t=" in r.source}
    assert frames and len(before) == 2 + 4 + len(frames)
    assert f"{lib}: added {4 + len(frames)}, moved 0, removed 0" in out

    moved_id = by_source(before)[str(lib / "a" / "p1.png")]
    gone_id = by_source(before)[str(lib / "a" / "p2.png")]
    (lib / "b").mkdir()
    os.rename(lib / "a" / "p1.png", lib / "b" / "renamed.png")
    (lib / "moved").mkdir()
    os.rename(lib / "clips" / "v.avi", lib / "moved" / "v2.avi")
    (lib / "a" / "p2.png").unlink()
    write_png(lib / "a" / "new.png", 9)

    assert main(["sync", str(lib), "--dry-run", *cli_flags]) == 0
    out = capsys.readouterr().out
    assert "to move (2):" in out and "to remove (1):" in out and "new (to ingest) (1):" in out
    assert f"{lib / 'a' / 'p1.png'} -> {lib / 'b' / 'renamed.png'}" in out
    assert "dry run, nothing changed" in out
    assert by_source(read_rows()) == by_source(before)  # the dry run changed nothing

    assert main(["ingest", str(lib), "--sync", "--json", *cli_flags]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["removed"] == [str(lib / "a" / "p2.png")]
    assert {m["to"] for m in report["moved"]} == {str(lib / "b" / "renamed.png"),
                                                  str(lib / "moved" / "v2.avi")}
    assert report["ingest"]["ingested"] == 1
    after = read_rows()
    assert len(after) == len(before)  # one removed, one added
    assert gone_id not in after
    renamed = after[moved_id]  # same id, same vector (not embedded again), new path and fields
    assert renamed.source == str(lib / "b" / "renamed.png")
    assert np.array_equal(renamed.vector, before[moved_id].vector)
    assert (renamed.metadata["name"], renamed.metadata["folder"]) == ("renamed.png", "b")
    assert renamed.metadata["width"] == before[moved_id].metadata["width"]
    for frame_id, frame in frames.items():
        assert after[frame_id].source.startswith(str(lib / "moved" / "v2.avi") + "#t=")
        assert after[frame_id].metadata["video"] == str(lib / "moved" / "v2.avi")
        assert np.array_equal(after[frame_id].vector, frame.vector)
    for outside in (look_alike / "s.png", neighbour / "n.png"):
        assert by_source(after)[str(outside)] == by_source(before)[str(outside)]

    assert main(["sync", str(lib), *cli_flags]) == 0  # in sync: a rerun changes nothing
    out = capsys.readouterr().out
    assert f"{lib}: added 0, moved 0, removed 0 file(s) (0 row(s)), unchanged 5" in out
    assert by_source(read_rows()) == by_source(after)


def test_sync_never_reads_an_empty_or_vanished_folder_as_everything_deleted(
    tmp_path: Path, cli_flags: list[str], read_rows: Rows, capsys: pytest.CaptureFixture[str]
) -> None:
    assert read_rows() == {}
    lib = tmp_path / "lib"
    files = [write_png(lib / f"p{i}.png", 20 + i) for i in range(2)]
    assert main(["sync", str(lib), "--quiet", *cli_flags]) == 0
    for path in files:
        path.unlink()  # what an unmounted disk's mount point looks like
    assert main(["sync", str(lib), *cli_flags]) == 2
    err = capsys.readouterr().err
    assert "has no image or video files, but 2 stored row(s) lie under it" in err
    assert "--allow-empty" in err
    lib.rmdir()
    assert main(["sync", str(lib), *cli_flags]) == 2
    assert "cannot list source folder" in capsys.readouterr().err
    assert len(read_rows()) == 2  # neither removed a row

    assert main(["ingest", str(tmp_path), "--dry-run", *cli_flags]) == 2
    assert "--dry-run and --allow-empty go with --sync" in capsys.readouterr().err
    lib.mkdir()
    assert main(["sync", str(lib), "--allow-empty", *cli_flags]) == 0
    assert "removed 2 file(s) (2 row(s))" in capsys.readouterr().out
    assert read_rows() == {}


@pytest.mark.server
def test_sync_and_filtered_delete_on_the_milvus_server(
    tmp_path: Path, milvus_server, tiny_model_files: tuple[Path, Path], tiny_embedder: Embedder
) -> None:
    settings: Settings = tiny_model_settings(
        tiny_model_files, tmp_path / "unused.db", f"living_{uuid.uuid4().hex[:10]}"
    ).model_copy(update={"uri": milvus_server.uri})
    lib = tmp_path / "lib"
    for i in range(3):
        write_png(lib / "a" / f"p{i}.png", 40 + i)
    components = build_components(settings)
    components._embedder = tiny_embedder
    store = components.store
    try:
        first = run_sync(components, lib)
        assert first.added is not None and first.added.ingested == 3
        ids = {r.source: r.id for b in store.iterate(100, with_vectors=False) for r in b}
        (lib / "b").mkdir()
        os.rename(lib / "a" / "p0.png", lib / "b" / "p0.png")
        (lib / "a" / "p1.png").unlink()
        second = run_sync(components, lib)
        assert [m.new.source for m in second.plan.moved] == [str(lib / "b" / "p0.png")]
        assert [f.path for f in second.plan.removed] == [str(lib / "a" / "p1.png")]
        stored = {r.source: r.id for b in store.iterate(100, with_vectors=False) for r in b}
        assert stored == {str(lib / "b" / "p0.png"): ids[str(lib / "a" / "p0.png")],
                          str(lib / "a" / "p2.png"): ids[str(lib / "a" / "p2.png")]}
        assert store.delete_where('metadata["folder"] == "b"') == 1
        assert store.count() == 1
        assert store.delete_where('metadata["folder"] == "b"') == 0
    finally:
        store.drop()
        components.close()
