"""Real `python -m mmrag` processes: quiet by default, chatty with -v, and never driven by the
names and captions they print (escaped in human output, exact in JSON)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmrag.cli import main
from tests.cli.conftest import EVIL, EVIL_ESCAPED, MARKUP, HostileFiles, run_mmrag

NOISE = ("libpng warning", "INFO root", "pkg_resources")


def test_ingest_and_search_are_quiet_and_escape_what_they_print(
    hostile_files: HostileFiles, tiny_model_files: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    flags = hostile_files.flags("quiet.db", tiny_model_files)
    ingest = run_mmrag("ingest", str(hostile_files.manifest), *flags)
    assert ingest.returncode == 0, ingest.stderr
    for noise in NOISE:
        assert noise not in ingest.stderr, ingest.stderr
    assert "\x1b" not in ingest.stdout + ingest.stderr and "\x07" not in ingest.stdout
    assert f"broken{EVIL_ESCAPED}.png" in ingest.stdout  # the rejected file, escaped
    assert "ingested 3, duplicates skipped 0, rejected 1" in ingest.stdout

    search = run_mmrag("search", "caption", "-k", "3", *flags)
    assert search.returncode == 0, search.stderr
    assert "\x1b" not in search.stdout and "\x07" not in search.stdout
    lines = search.stdout.splitlines()
    assert max(map(len, lines)) <= 80
    table = "\n".join(lines)
    assert f"{EVIL_ESCAPED}.png" in table  # the file name stays readable at 80 columns
    assert "[bold red]loud.png" in table  # markup shown literally, not interpreted
    for noise in NOISE:
        assert noise not in search.stderr, search.stderr

    assert main(["search", "caption", "-k", "3", "--paths", *flags]) == 0
    shown = capsys.readouterr().out.splitlines()
    expected = {str(hostile_files.root / "images" / n).replace(EVIL, EVIL_ESCAPED)
                for n in hostile_files.names}
    assert len(shown) == 3 and set(shown) == expected

    assert main(["search", "caption", "-k", "3", "--json", *flags]) == 0
    hits = json.loads(capsys.readouterr().out)  # JSON stays exact
    assert {Path(h["source"]).name for h in hits} == set(hostile_files.names)
    assert any(EVIL in h["caption"] and MARKUP in h["caption"] for h in hits)

    # the answer quotes stored captions and cites hostile names: escaped too
    assert main(["ask", "which caption?", "--llm", "extractive", "-k", "3", *flags]) == 0
    answer = capsys.readouterr().out
    assert "\x1b" not in answer and "\x07" not in answer and EVIL_ESCAPED in answer

    queries = hostile_files.root / "queries.jsonl"
    queries.write_text(json.dumps({"query": f"q{EVIL}", "relevant": [hits[-1]["id"]]}) + "\n")
    assert main(["eval", str(queries), "--per-query", *flags]) == 0
    report = capsys.readouterr().out
    assert "\x1b" not in report and f"q{EVIL_ESCAPED}" in report


def test_verbose_shows_library_logs_and_native_warnings(
    hostile_files: HostileFiles, tiny_model_files: tuple[Path, Path]
) -> None:
    flags = hostile_files.flags("verbose.db", tiny_model_files)
    verbose = run_mmrag("-v", "ingest", str(hostile_files.manifest), *flags)
    assert verbose.returncode == 0, verbose.stderr
    assert "libpng warning: bKGD" in verbose.stderr  # the forwarder passes it on with -v
    assert "iCCP" not in verbose.stderr  # the profile never reaches libpng
    assert "INFO root:" in verbose.stderr  # open_clip's model loading lines
    assert "pkg_resources is deprecated" in verbose.stderr

