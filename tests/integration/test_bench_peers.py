"""`mmrag bench --peers` and the server search rows run end to end at tiny sizes (no timing is
asserted): mmrag's CLI, towhee's runtime and the naive loop as real child processes, Milvus
Lite files, the embedded Milvus server. clip-retrieval needs a venv install of minutes: its
command and its output are checked here, and a registry that cannot serve it skips the peer."""

from __future__ import annotations

import json
from contextlib import nullcontext
from pathlib import Path

import pytest

from mmrag.bench import TINY, Sizes
from mmrag.bench.peers.base import PeerFailed, parse_result_line, result_line
from mmrag.bench.peers.clip_retrieval import CHILD, clip_retrieval_peer, requirements
from mmrag.bench.peers.mmrag_peer import parse_ingest_summary
from mmrag.bench.sections.peers import peer_rows, run_tool, skipped_row
from mmrag.cli import main


@pytest.mark.slow
def test_peers_tiny_runs_mmrag_and_towhees_runtime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MMRAG_BENCH_CACHE", str(tmp_path / "cache"))
    out, md = tmp_path / "peers.json", tmp_path / "peers.md"
    code = main(["bench", "--tiny", "--peers", "--peer-tools", "mmrag,towhee",
                 "--models", "mmrag-demo", "--torch-threads", "1",
                 "--json", str(out), "--markdown", str(md)])
    assert code == 0
    report = json.loads(out.read_text())
    assert {row["section"] for row in report["rows"]} == {"peers"}  # --peers alone
    tools = report["extra"]["peers"]["tools"]
    assert set(tools) == {"mmrag", "towhee"}
    for tool in tools.values():
        assert not tool["skipped"], tool
        assert tool["images"] == TINY["peer_images"]  # rows counted in each tool's store
        assert 0 < tool["run_s"] <= tool["wall_s"]
    assert tools["towhee"]["extra"]["precision"] == tools["mmrag"]["extra"]["precision"]
    ratios = {row["figure"]: row for row in report["rows"] if row["baseline"]}
    towhee = next(r for f, r in ratios.items() if "mmrag vs towhee" in f)
    assert towhee["target"] == ">= 2" and towhee["ratio"] > 0
    assert "| peers |" in md.read_text()


@pytest.mark.slow
def test_naive_child_writes_one_row_per_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from mmrag.bench.models import checkpoint_for
    from mmrag.bench.peers import naive_child
    from mmrag.bench.workload import write_jpegs

    monkeypatch.setenv("MMRAG_BENCH_CACHE", str(tmp_path / "cache"))
    write_jpegs(tmp_path / "imgs", 5)
    assert naive_child.main(["--folder", str(tmp_path / "imgs"), "--model", "mmrag-demo",
                             "--checkpoint", str(checkpoint_for("mmrag-demo")),
                             "--db", str(tmp_path / "naive.db")]) == 0
    counted = parse_result_line(capsys.readouterr().out)
    assert counted.images == 5 and counted.run_s > 0  # rows counted in the Lite file


def test_clip_retrieval_command_takes_the_checkpoint_through_its_own_loader(
    tmp_path: Path,
) -> None:
    python = tmp_path / "venv" / "bin" / "python"
    checkpoint = tmp_path / "w.safetensors"
    peer = clip_retrieval_peer(python, tmp_path / "imgs", tmp_path / "out", "ViT-B-32",
                               checkpoint, 32, 2, {"MMRAG_PRECISION": "auto"})
    assert peer.command[:3] == [str(python), "-I", str(CHILD)]  # isolated: no mmrag shadowing
    assert peer.command[3:] == [str(tmp_path / "imgs"), str(tmp_path / "out"), "ViT-B-32",
                                str(checkpoint.resolve()), "32", "2"]
    source = CHILD.read_text()
    assert 'f"open_clip:{model}/{checkpoint}"' in source  # open_clip's pretrained= a file
    assert "clip_retrieval.clip_inference.main" in source and "mmrag" not in source.split(
        '"""', 2)[2]  # the child imports nothing of mmrag's
    assert "clip-retrieval==2.45.0" in requirements()
    assert any(r.startswith("torch==") for r in requirements())  # the wheels already here


def test_peer_result_lines_are_read_after_a_line_left_open() -> None:
    logged = " sample_per_sec 0 ; sample_count 20 \n" + result_line(20, 1.5, precision="fp32")
    counted = parse_result_line(logged + "\n")
    assert (counted.images, counted.run_s, counted.extra) == (20, 1.5, {"precision": "fp32"})
    with pytest.raises(PeerFailed):
        parse_result_line(" sample_count 20 " + result_line(20, 1.5))  # glued: not a result
    summary = json.dumps({"ingested": 7, "elapsed_s": 0.5, "rejected": 1})
    got = parse_ingest_summary("progress\n" + summary + "\n", "bf16")
    assert (got.images, got.run_s, got.extra["precision"]) == (7, 0.5, "bf16")


@pytest.mark.slow
def test_clip_retrieval_is_skipped_with_the_reason_when_it_cannot_be_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "no-packages"
    empty.mkdir()
    monkeypatch.setenv("MMRAG_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # no registry: only an empty folder of wheels
    monkeypatch.setenv("PIP_FIND_LINKS", str(empty))
    logged: list[str] = []
    result = run_tool("clip-retrieval", "ViT-B-32", tmp_path / "w.safetensors", tmp_path,
                      tmp_path, Sizes(**TINY), {}, logged.append)
    assert result.skipped.startswith("clip-retrieval 2.45.0 could not be installed")
    assert "registry" in result.skipped and logged
    row = skipped_row(result)
    assert row.value is None and row.figure.endswith("skipped")
    rows = peer_rows("ViT-B-32", 12, {"clip-retrieval": result})
    assert [r.note for r in rows] == [result.skipped]


@pytest.mark.slow
def test_search_rows_on_the_embedded_server_with_hnsw_and_its_recall(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, milvus_server: object
) -> None:
    from mmrag.bench.models import load_embedder
    from mmrag.bench.sections.search import server_search_rows

    monkeypatch.setenv("MMRAG_BENCH_CACHE", str(tmp_path / "cache"))
    uri = milvus_server.uri  # type: ignore[attr-defined]
    embedder = load_embedder("mmrag-demo", batch_size=4)
    sizes = Sizes(**TINY)
    rows = server_search_rows("mmrag-demo", embedder, 100.0, sizes, tmp_path, print,
                              server=lambda work: nullcontext(uri))
    by_figure = {row.figure: row for row in rows}
    assert len(rows) == 5, [r.figure for r in rows]
    recalls = [r for f, r in by_figure.items() if "recall@10" in f]
    assert ["uniform" in r.figure for r in recalls] == [True, False]
    for recall in recalls:  # 500 vectors: HNSW finds nearly all
        assert "HNSW" in recall.figure and recall.value is not None and recall.value >= 0.9
    assert "ef 512: " in recalls[0].note and "ef 512: " in recalls[1].note
    one = next(r for f, r in by_figure.items() if "1 client" in f)
    assert "Milvus server HNSW" in one.figure and one.value and one.value > 0
    assert all(r.value and r.value > 0 for r in rows)
