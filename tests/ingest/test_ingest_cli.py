"""`mmrag ingest` flags: --json, --quiet, --strict, --rejects, --shard, and early failures."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from ingest import IngestOptions, run_ingest
from ingest.shard import Shard
from ingest.sources import open_source
from mmrag.cli import main
from retrieval.components import Components
from retrieval.config import Settings
from tests.ingest.helpers import stored_records


def test_json_summary_default_rejects_file_and_rerun(
    settings: Settings, cli_flags: list[str], make_image_files,
    capsys: pytest.CaptureFixture[str],
) -> None:
    files = make_image_files(4)
    (files[0].parent / "bad.png").write_bytes(b"\x89PNG but not really")
    assert main(["ingest", str(files[0].parent), "--json", *cli_flags]) == 0
    summary = json.loads(capsys.readouterr().out)
    rejects = Path(settings.uri).parent / "mmrag-rejects-ingest.jsonl"
    assert summary["ingested"] == 4 and summary["rejected"] == 1
    assert summary["rejects_file"] == str(rejects)
    assert summary["rejected_by_stage"] == {"decode": 1}
    assert set(summary) >= {"scanned", "duplicates", "elapsed_s", "throughput_per_s", "shard"}
    assert [json.loads(x)["stage"] for x in rejects.read_text().splitlines()] == ["decode"]

    assert main(["ingest", str(files[0].parent), "--json", *cli_flags]) == 0
    again = json.loads(capsys.readouterr().out)
    assert (again["ingested"], again["duplicates"], again["rejected"]) == (0, 4, 1)


def test_text_summary_strict_and_custom_rejects_path(
    tmp_path: Path, cli_flags: list[str], make_image_files,
    capsys: pytest.CaptureFixture[str],
) -> None:
    files = make_image_files(3)
    (files[0].parent / "zero.jpg").write_bytes(b"")
    rejects = tmp_path / "out" / "bad.jsonl"
    code = main(["ingest", str(files[0].parent), "--strict", "--rejects", str(rejects),
                 *cli_flags])
    assert code == 1
    out = capsys.readouterr().out
    assert "ingested 3, duplicates skipped 0, rejected 1" in out
    assert "zero.jpg: empty file (0 bytes)" in out
    assert str(rejects) in out
    assert len(rejects.read_text().splitlines()) == 1
    assert main(["ingest", str(files[0]), "--strict", *cli_flags]) == 0


def test_quiet_prints_nothing_unless_strict_fails(
    cli_flags: list[str], make_image_files, capsys: pytest.CaptureFixture[str]
) -> None:
    files = make_image_files(2)
    assert main(["ingest", str(files[0].parent), "--quiet", *cli_flags]) == 0
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", "")
    (files[0].parent / "zero.jpg").write_bytes(b"")
    assert main(["ingest", str(files[0].parent), "--quiet", "--strict", *cli_flags]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "1 item(s) rejected" in captured.err


@pytest.mark.parametrize(
    ("content", "message"),
    [("", "is empty"), ("name,label\na.jpg,dog\n", "no 'path', 'url' or 'text' column")],
)
def test_bad_manifest_fails_before_any_work(
    tmp_path: Path, settings: Settings, cli_flags: list[str], content: str, message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    manifest = tmp_path / "list.csv"
    manifest.write_text(content)
    assert main(["ingest", str(manifest), *cli_flags]) == 2
    err = capsys.readouterr().err
    assert str(manifest) in err and message in err
    assert not Path(settings.uri).exists()  # no store opened, no model loaded


@pytest.mark.parametrize("shard", ["3/3", "x", "1/0"])
def test_bad_shard_is_a_usage_error(
    tmp_path: Path, cli_flags: list[str], shard: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ingest", str(tmp_path), "--shard", shard, *cli_flags]) == 2
    assert "shard" in capsys.readouterr().err


def test_three_shards_fill_one_collection_with_exactly_the_union(
    open_components: Callable[..., Components], cli_flags: list[str], make_image_files,
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    files = make_image_files(30)
    folder = files[0].parent
    (folder / "copies").mkdir()
    for path in files[:6]:  # the same bytes under a second path, possibly in another shard
        (folder / "copies" / path.name).write_bytes(path.read_bytes())
    (folder / "junk.jpg").write_text("junk")

    reference = open_components("everything")
    whole = run_ingest(reference, open_source(folder), IngestOptions(batch_size=8))
    assert (whole.ingested, whole.duplicates, whole.rejected) == (30, 6, 1)
    expected = {(r.id, r.source) for r in stored_records(reference.store)}
    reference.close()

    summaries = []
    for index in range(3):
        flags = [*cli_flags, "--shard", f"{index}/3", "--json", "--rejects",
                 str(tmp_path / f"rejects-{index}.jsonl")]
        assert main(["ingest", str(folder), *flags]) == 0
        summaries.append(json.loads(capsys.readouterr().out))
    assert [s["shard"] for s in summaries] == ["0/3", "1/3", "2/3"]
    assert sum(s["scanned"] for s in summaries) == 37  # every file seen by exactly one shard
    assert sum(s["ingested"] for s in summaries) == 30
    assert sum(s["rejected"] for s in summaries) == 1
    assert all(0 < s["scanned"] < 37 for s in summaries)
    sharded = open_components("ingest")
    ids = {r.id for r in stored_records(sharded.store)}
    assert ids == {i for i, _ in expected}
    assert sharded.store.count() == 30
    keys = [p.relative_to(folder).as_posix() for p in sorted(folder.rglob("*.jpg"))]
    owners = [[k for k in keys if Shard(i, 3).owns(k)] for i in range(3)]
    assert sorted(k for o in owners for k in o) == sorted(keys)
