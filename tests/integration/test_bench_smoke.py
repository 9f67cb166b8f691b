"""`mmrag bench` machinery runs end to end at tiny sizes (no timing is asserted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmrag.cli import main
from retrieval.embedders.precision import native_cpu_bf16


@pytest.mark.slow
def test_bench_tiny_runs_every_section(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMRAG_BENCH_CACHE", str(tmp_path / "cache"))
    out, md = tmp_path / "bench.json", tmp_path / "bench.md"
    code = main(["bench", "--tiny", "--models", "mmrag-demo", "--torch-threads", "1",
                 "--json", str(out), "--markdown", str(md)])
    assert code == 0
    report = json.loads(out.read_text())
    sections = {row["section"] for row in report["rows"]}
    bf16 = {"precision"} if native_cpu_bf16() else set()  # bf16 vs fp32 rows where it runs
    assert sections == {"startup", "text", "ingest", "memory", "search", "store"} | bf16
    assert report["machine"]["cores"] >= 1 and "load_end" in report["machine"]
    for row in report["rows"]:
        assert row["value"] is None or row["value"] >= 0
    text = next(r for r in report["rows"] if r["section"] == "text")
    assert "min cosine 1.0" in text["note"] or "min cosine 0.9999" in text["note"]
    assert "| figure |" in md.read_text()
