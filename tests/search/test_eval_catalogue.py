"""The catalogue of the demo data, measured: `mmrag eval --modes` on visual, code and mixed
queries (real ingest, real Milvus Lite, the tiny model), and the CLI's modes and the command
that adds the text index, run as users run them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingest import IngestOptions, open_source, run_ingest
from mmrag.cli import main
from retrieval.components import build_components
from retrieval.config import Settings
from retrieval.demo.synthetic import catalogue_queries, write_catalogue
from retrieval.embedders.base import Embedder
from retrieval.stores.milvus import MilvusStore
from tests.cli.conftest import run_mmrag
from tests.search.test_keyword_store_lite import _create_without_text_index


@pytest.fixture(scope="module")
def catalogue(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_files: tuple[Path, Path],
    tiny_embedder: Embedder,
) -> tuple[Settings, Path, list[str]]:
    root = tmp_path_factory.mktemp("catalogue")
    products = write_catalogue(root, 40, seed=3, size=64)
    queries = root / "queries.jsonl"
    lines = catalogue_queries(products, 6, seed=3)
    queries.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    config, checkpoint = tiny_model_files
    settings = Settings(uri=str(root / "shop.db"), collection="shop", model=str(config),
                        pretrained=None, checkpoint=checkpoint, device="cpu", batch_size=8)
    flags = ["--uri", settings.uri, "--model", str(config), "--checkpoint", str(checkpoint),
             "--device", "cpu"]
    components = build_components(settings)
    components._embedder = tiny_embedder
    try:
        components.store.ensure_collection(
            tiny_embedder.dim, tiny_embedder.model_id, text_columns=["code", "name"]
        )
        run_ingest(components, open_source(root / "manifest.csv"), IngestOptions(batch_size=8))
    finally:
        components.close()
    return settings, queries, flags


def test_eval_reports_each_mode_on_visual_code_and_mixed_queries(
    catalogue: tuple[Settings, Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    _, queries, flags = catalogue
    argv = ["eval", str(queries), *flags, "--collection", "shop", "--json",
            "--modes", "vector,keyword,hybrid"]
    assert main(argv) == 0
    reports = {r["mode"]: r for r in json.loads(capsys.readouterr().out)["modes"]}
    assert list(reports) == ["vector", "keyword", "hybrid"]
    metrics = {
        mode: {t["task"].split("(")[1].rstrip(")"): t["metrics"] for t in report["tasks"]}
        for mode, report in reports.items()
    }
    assert set(metrics["hybrid"]) == {"visual", "code", "mixed"}
    for group in ("code", "mixed"):  # the picture cannot show a code: BM25 finds it
        assert metrics["keyword"][group]["recall@1"] == 1.0
        assert metrics["vector"][group]["recall@1"] < 0.5
    assert metrics["keyword"]["visual"]["recall@10"] == 0.0  # captions never say the colour
    mixed, visual = metrics["hybrid"]["mixed"], metrics["hybrid"]["visual"]
    for name in ("recall@1", "recall@10", "ndcg@10"):
        assert mixed[name] >= max(metrics[m]["mixed"][name] for m in ("vector", "keyword"))
        assert visual[name] >= metrics["vector"]["visual"][name] - 0.02


def test_cli_modes_and_the_command_that_adds_the_text_index(
    catalogue: tuple[Settings, Path, list[str]], tiny_embedder: Embedder,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    settings, _, flags = catalogue
    with MilvusStore(settings.uri, "shop") as shop, MilvusStore(settings.uri, "old") as old:
        with monkeypatch.context() as patch:
            patch.setattr(MilvusStore, "_create", _create_without_text_index)
            old.ensure_collection(tiny_embedder.dim, tiny_embedder.model_id)
        for batch in shop.iterate(batch_size=100, with_vectors=True):
            old.add(batch)
        old.flush()
        code = next(iter(shop.iterate(batch_size=1)))[0].metadata["code"]
    search = ["search", code, *flags, "--collection", "old", "--mode", "keyword", "--json"]
    assert main(search) == 2  # in-process: the message a user sees
    message = capsys.readouterr().err
    assert "has no text index" in message and "mmrag reindex --add-text-index" in message
    added = run_mmrag("reindex", "--add-text-index", "--uri", settings.uri, "--collection", "old",
                      "--text-columns", "code,name", "--json")
    assert added.returncode == 0, added.stderr
    assert "tantivy" not in added.stderr  # Lite's text-index commit chatter is filtered out
    summary = json.loads(added.stdout)
    assert summary["copied"] == 40 and summary["switched"] and summary["new_collection"] == "old_v2"
    assert main(search) == 0  # the name now reads the copy, which has the index
    hits = json.loads(capsys.readouterr().out)
    assert hits[0]["metadata"]["code"] == code
