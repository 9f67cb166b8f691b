"""No manifest row is lost silently (#20.1, #20.2): malformed lines are rejects with their line
number, ids given to two images are conflicts, and long captions are truncated with a warning."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingest import IngestOptions, run_ingest
from ingest.manifest import ManifestSource
from ingest.sources import open_source
from mmrag.cli import main
from retrieval.components import Components
from tests.ingest.helpers import stored_records

OPTIONS = IngestOptions(batch_size=4, workers=2, fetch_workers=2)


def nested(levels: int) -> str:
    """JSON text of a value nested ``levels`` lists deep."""
    return "[" * levels + "1" + "]" * levels


def test_stray_quotes_reject_their_own_line_and_every_other_row_ingests(
    tmp_path: Path, components: Components, make_image_files
) -> None:
    names = [p.name for p in make_image_files(6)]
    manifest = tmp_path / "list.csv"
    manifest.write_text(
        "path,caption\n"
        f"images/{names[0]},one\n"
        f"images/{names[1]},two\n"
        f'images/{names[2]},"a 5 inch screen\n'  # opens a quoted cell running on for 2 rows
        f"images/{names[3]},four\n"
        f'images/{names[4]},"five"\n'
        f'images/{names[5]},"six\n'  # the same on the last row: no closing quote at all
    )
    summary = run_ingest(components, open_source(manifest), OPTIONS)
    assert (summary.ingested, summary.rejected) == (4, 2)
    lines = sorted(r.reason.split(" is malformed")[0] for r in summary.rejects)
    assert lines == ["line 4", "line 7"]
    assert all(r.stage == "manifest" for r in summary.rejects)
    captions = sorted(r.caption for r in stored_records(components.store))
    assert captions == ["five", "four", "one", "two"]

    again = run_ingest(components, open_source(manifest), OPTIONS)
    assert (again.ingested, again.duplicates, again.rejected) == (0, 4, 2)


def test_quoted_multi_line_captions_stay_one_row_and_extra_cells_are_rejected(
    tmp_path: Path,
) -> None:
    manifest = tmp_path / "list.csv"
    manifest.write_text(
        'path,caption,n\na.jpg,"first line\nsecond line, with a comma",1\n'
        "b.jpg,x,2,surplus\n"
        'c.jpg,"he said ""hi""",3\n'
    )
    items = list(ManifestSource(manifest))
    assert [i.error for i in items] == ["line 4 has 4 cells, the header has 3", None, None]
    assert items[1].caption == "first line\nsecond line, with a comma"
    assert items[1].metadata == {"n": 1} and items[2].caption == 'he said "hi"'


def test_deep_json_lines_and_nul_paths_are_one_reject_each(
    tmp_path: Path, components: Components, make_image_files
) -> None:
    names = [p.name for p in make_image_files(3)]
    jsonl = tmp_path / "list.jsonl"
    jsonl.write_text(
        json.dumps({"path": f"images/{names[0]}", "caption": "kept"}) + "\n"
        + f'{{"path": "images/{names[1]}", "tags": {nested(600)}}}\n'  # too deep to store
        + f'{{"path": "images/{names[1]}", "tags": {nested(5000)}}}\n'  # too deep for json
        + json.dumps({"path": f"images/{names[1]}", "tags": [["a"]]}) + "\n"
    )
    csv = tmp_path / "list.csv"
    csv.write_text(f"path\nimages/{names[2]}\x00/etc/passwd\nimages/{names[2]}\n")

    first = run_ingest(components, open_source(jsonl), OPTIONS)
    assert (first.ingested, first.rejected) == (2, 2)
    reasons = sorted(r.reason for r in first.rejects)
    assert reasons[0] == "line 3 nests too deeply to parse as JSON"
    assert reasons[1].startswith("row 2 (line 2): column 'tags' nests deeper than 32 levels")
    second = run_ingest(components, open_source(csv), OPTIONS)
    assert (second.ingested, second.rejected) == (1, 1)
    assert "contains a NUL character" in second.rejects[0].reason
    assert len(stored_records(components.store)) == 3

    again = run_ingest(components, open_source(jsonl), OPTIONS)
    assert (again.ingested, again.duplicates, again.rejected) == (0, 2, 2)


def test_an_id_given_to_two_images_is_a_conflict_and_a_repeated_row_a_duplicate(
    tmp_path: Path, components: Components, make_image_files
) -> None:
    names = [p.name for p in make_image_files(3)]
    manifest = tmp_path / "list.csv"
    manifest.write_text(
        "id,path\n"
        f"a,images/{names[0]}\n"
        f"a,images/{names[1]}\n"  # another image under the same id
        f"b,images/{names[2]}\n"
        f"b,images/{names[2]}\n"  # the same row again
    )
    summary = run_ingest(components, open_source(manifest), OPTIONS)
    assert (summary.ingested, summary.duplicates, summary.rejected) == (2, 1, 1)
    assert summary.rejected_by_stage == {"conflict": 1}
    (conflict,) = summary.rejects
    assert conflict.source.endswith(names[1])
    assert "id 'a' is repeated with another image; the first row, with " in conflict.reason
    assert names[0] in conflict.reason
    stored = {r.id: Path(r.source).name for r in stored_records(components.store)}
    assert stored == {"a": names[0], "b": names[2]}


def test_long_captions_are_truncated_with_a_warning_in_the_summary(
    tmp_path: Path, cli_flags: list[str], make_image_files, capsys: pytest.CaptureFixture[str],
) -> None:
    names = [p.name for p in make_image_files(2)]
    manifest = tmp_path / "list.csv"
    manifest.write_text(f"path,caption\nimages/{names[0]},{'é' * 3000}\nimages/{names[1]},short\n")
    assert main(["ingest", str(manifest), "--json", *cli_flags]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["ingested"], summary["captions_truncated"]) == (2, 1)

    manifest.write_text(f"path,caption\nimages/{names[0]},{'x' * 5000}\n")
    assert main(["ingest", str(manifest), *cli_flags]) == 0  # a duplicate: not written again
    assert "truncated" not in capsys.readouterr().out
    assert main(["ingest", str(manifest), *cli_flags, "--collection", "second"]) == 0
    out = capsys.readouterr().out
    assert "warning 1 caption(s) were longer than the caption field (4096 bytes of UTF-8)" in out
    assert names[0] in out
