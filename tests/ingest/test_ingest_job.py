"""The job on real files, a real Lite collection and the tiny model: dedup, rejects, metadata."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ingest import IngestOptions, run_ingest
from ingest.fetch import FetchOptions
from ingest.rejects import RejectsFile, default_rejects_path
from ingest.shard import Shard
from ingest.sources import open_source
from retrieval.components import Components
from retrieval.stores.expr import field_ref, literal
from tests.ingest.helpers import (
    ImageServer,
    Route,
    noise_jpeg,
    png_bomb,
    serve,
    source_counts,
    stored_records,
)

OPTIONS = IngestOptions(batch_size=8, workers=2, fetch_workers=4, insert_batch_size=16,
                        dedup_batch_size=16)


def read_rejects(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_bad_input_is_rejected_with_reasons_and_the_batch_goes_on(
    components: Components, make_image_files, tmp_path: Path
) -> None:
    files = make_image_files(6)
    folder = files[0].parent
    (folder / "zero.jpg").write_bytes(b"")
    (folder / "text.jpg").write_text("not an image at all")
    (folder / "cut.jpg").write_bytes(files[2].read_bytes()[:300])
    (folder / "bomb.png").write_bytes(png_bomb())
    (folder / "dangling.png").symlink_to(folder / "no-such-file.png")
    (folder / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 200)
    rejects = RejectsFile(tmp_path / "rejects.jsonl")
    summary = run_ingest(components, open_source(folder), OPTIONS, rejects=rejects)
    rejects.close()
    assert (summary.ingested, summary.duplicates, summary.rejected) == (6, 0, 6)
    assert components.store.count() == 6
    lines = read_rejects(tmp_path / "rejects.jsonl")
    by_name = {Path(line["source"]).name: line for line in lines}
    assert set(by_name) == {"zero.jpg", "text.jpg", "cut.jpg", "bomb.png", "dangling.png",
                            "broken.mp4"}
    assert by_name["zero.jpg"]["stage"] == "read" and "0 bytes" in by_name["zero.jpg"]["reason"]
    assert by_name["dangling.png"]["stage"] == "read"
    assert "No such file" in by_name["dangling.png"]["reason"]
    assert by_name["text.jpg"]["stage"] == "decode"
    assert by_name["cut.jpg"]["stage"] == "decode"
    assert "81000000 pixels, over the cap of 50000000" in by_name["bomb.png"]["reason"]
    assert by_name["broken.mp4"]["stage"] == "video"
    assert all(set(line) == {"source", "reason", "stage", "time"} for line in lines)
    assert all(line["reason"] and "\n" not in line["reason"] for line in lines)
    assert summary.rejected_by_stage == {"read": 2, "decode": 3, "video": 1}
    assert summary.as_dict()["rejects_file"] == str(tmp_path / "rejects.jsonl")


def test_pixel_cap_is_configurable(components: Components, make_image_files) -> None:
    files = make_image_files(3, sizes=((40, 40), (100, 100), (40, 40)))
    options = IngestOptions(batch_size=8, max_pixels=50 * 50)
    summary = run_ingest(components, open_source(files[0].parent), options)
    assert (summary.ingested, summary.rejected) == (2, 1)
    assert "100x100" in summary.rejects[0].reason


def test_same_bytes_twice_stored_once_and_rerun_adds_nothing(
    components: Components, make_image_files
) -> None:
    files = make_image_files(5)
    folder = files[0].parent
    (folder / "again").mkdir()
    for path in files[:2]:
        (folder / "again" / path.name).write_bytes(path.read_bytes())
    first = run_ingest(components, open_source(folder), OPTIONS)
    assert (first.ingested, first.duplicates, first.rejected) == (5, 2, 0)
    second = run_ingest(components, open_source(folder), OPTIONS)
    assert (second.ingested, second.duplicates, second.rejected) == (0, 7, 0)
    records = stored_records(components.store)
    assert len(records) == len({r.id for r in records}) == 5


def test_manifest_metadata_is_stored_and_filterable(
    components: Components, make_image_files, tmp_path: Path
) -> None:
    files = make_image_files(6)
    labels = ["dog", "cat", "dog", "bird", "dog", "cat"]
    dates = ["2024-01-05", "2024-01-20", "2024-02-03", "2024-02-10", "2023-12-31", "2024-03-01"]
    manifest = tmp_path / "photos.csv"
    lines = ["id,path,caption,label,date,width"]
    for i, path in enumerate(files):
        rel = path.relative_to(tmp_path).as_posix()
        lines.append(f"p{i},{rel},photo number {i},{labels[i]},{dates[i]},{100 + i}")
    lines.append("p1,images/img_0001.jpg,dup id,cat,2024-01-01,1")  # repeated id: first wins
    lines.append("bad id,images/img_0002.jpg,,cat,2024-01-01,1")
    manifest.write_text("\n".join(lines) + "\n")
    summary = run_ingest(components, open_source(manifest), OPTIONS)
    assert (summary.ingested, summary.duplicates, summary.rejected) == (6, 1, 1)
    store = components.store
    by_id = {r.id: r for r in stored_records(store)}
    assert set(by_id) == {f"p{i}" for i in range(6)}
    assert by_id["p2"].caption == "photo number 2"
    assert by_id["p2"].source == str(files[2])
    assert by_id["p2"].metadata == {"label": "dog", "date": "2024-02-03", "width": 102}

    query = components.embedder.embed_texts(["a photo"])
    dogs = store.search(query, k=10, expr=f'{field_ref("metadata", "label")} == {literal("dog")}')
    assert {h.id for h in dogs[0]} == {"p0", "p2", "p4"}
    date = field_ref("metadata", "date")
    january = f"{date} >= {literal('2024-01-01')} and {date} < {literal('2024-02-01')}"
    assert {h.id for h in store.search(query, k=10, expr=january)[0]} == {"p0", "p1"}
    wide = f"{field_ref('metadata', 'width')} > 103"
    assert {h.id for h in store.search(query, k=10, expr=wide)[0]} == {"p4", "p5"}

    again = run_ingest(components, open_source(manifest), OPTIONS)
    assert (again.ingested, again.duplicates, again.rejected) == (0, 7, 1)


@pytest.fixture
def url_server() -> Iterator[ImageServer]:
    yield from serve({})


def test_url_manifest_fetches_concurrently_and_rejects_bad_urls(
    components: Components, url_server: ImageServer, tmp_path: Path
) -> None:
    goods = [url_server.add(f"/img{i}.jpg", Route(body=noise_jpeg(40 + i))) for i in range(8)]
    flaky = url_server.add("/flaky.jpg", Route(body=noise_jpeg(60), fail_first=1))
    typed = url_server.add("/page", Route(body=b"<html/>", content_type="text/html"))
    slow = url_server.add("/slow.jpg", Route(body=noise_jpeg(61), delay_s=2.0))
    huge = url_server.add("/huge.jpg", Route(body=b"\xff\xd8\xff" + b"1" * 20_000))
    missing = url_server.url("/missing.jpg")
    manifest = tmp_path / "urls.csv"
    rows = [*goods, flaky, typed, slow, huge, missing]
    manifest.write_text("url,label\n" + "".join(f"{u},web\n" for u in rows))
    options = IngestOptions(
        batch_size=8, fetch_workers=8, max_bytes=10_000,
        fetch=FetchOptions(timeout_s=0.6, retries=1, backoff_s=0.01, max_bytes=10_000),
    )
    rejects = RejectsFile(tmp_path / "r.jsonl")
    summary = run_ingest(components, open_source(manifest), options, rejects=rejects)
    rejects.close()
    assert (summary.ingested, summary.rejected) == (9, 4), summary.rejects
    stored = source_counts(components.store)
    assert set(stored) == {*goods, flaky} and set(stored.values()) == {1}
    reasons = {line["source"]: line for line in read_rejects(tmp_path / "r.jsonl")}
    assert set(reasons) == {typed, slow, huge, missing}
    assert all(line["stage"] == "fetch" for line in reasons.values())
    assert "HTTP 404" in reasons[missing]["reason"]
    assert "timed out" in reasons[slow]["reason"]
    assert "text/html" in reasons[typed]["reason"]
    assert "over the cap" in reasons[huge]["reason"]
    assert url_server.hits["/missing.jpg"] == 1 and url_server.hits["/flaky.jpg"] == 2
    assert {r.metadata["label"] for r in stored_records(components.store)} == {"web"}


def test_embedding_batches_are_full(
    components: Components, make_image_files, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = make_image_files(21)
    (files[0].parent / "junk.jpg").write_text("junk")
    embedder = components.embedder
    sizes: list[int] = []
    original = embedder.embed_prepared

    def spy(prepared: list[Any]) -> Any:
        sizes.append(len(prepared))
        return original(prepared)

    monkeypatch.setattr(embedder, "embed_prepared", spy)
    summary = run_ingest(components, open_source(files[0].parent), OPTIONS)
    assert summary.ingested == 21
    assert sizes == [8, 8, 5]


def test_default_rejects_path_is_next_to_the_lite_file(tmp_path: Path) -> None:
    path = default_rejects_path(str(tmp_path / "x.db"), "photos")
    assert path == tmp_path / "mmrag-rejects-photos.jsonl"
    sharded = default_rejects_path(str(tmp_path / "x.db"), "photos", Shard(1, 4))
    assert sharded.name == "mmrag-rejects-photos-shard-1-of-4.jsonl"
    assert default_rejects_path("http://milvus:19530", "c").parent == Path.cwd()


def test_manifest_paths_that_are_missing_folders_or_fifos_are_rejected(
    components: Components, make_image_files, tmp_path: Path
) -> None:
    files = make_image_files(2)
    (tmp_path / "folder.jpg").mkdir()
    os.mkfifo(tmp_path / "pipe.jpg")
    os.mkfifo(tmp_path / "pipe.mp4")
    manifest = tmp_path / "list.csv"
    rows = [files[0].name, files[1].name, "missing.jpg", "folder.jpg", "pipe.jpg", "pipe.mp4"]
    manifest.write_text("path\n" + "".join(f"images/{r}\n" if r.startswith("img") else f"{r}\n"
                                           for r in rows))
    summary = run_ingest(components, open_source(manifest), OPTIONS)
    assert (summary.ingested, summary.rejected) == (2, 4)
    reasons = {Path(r.source).name: r.reason for r in summary.rejects}
    assert "No such file" in reasons["missing.jpg"]
    assert reasons["folder.jpg"] == "cannot read file: not a regular file but a folder"
    assert reasons["pipe.jpg"] == "cannot read file: not a regular file but a FIFO (named pipe)"
    assert reasons["pipe.mp4"] == "cannot read video: not a regular file but a FIFO (named pipe)"
