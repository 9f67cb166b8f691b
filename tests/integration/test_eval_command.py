"""`mmrag eval` and retrieval.evaluation against real Milvus Lite collections."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from ingest import IngestOptions, open_source, run_ingest
from mmrag.cli import main
from retrieval.components import build_components
from retrieval.config import Settings
from retrieval.embedders.base import Embedder, l2_normalize
from retrieval.evaluation import EvalOptions, EvalReport, evaluate, load_queries
from retrieval.ids import content_id
from retrieval.imaging import decode_image
from retrieval.stores import open_store
from retrieval.stores.base import VectorStore
from retrieval.types import Modality, Record

TEXTS = {"first": [1.0, 0.0, 0.0, 0.0], "cats": [1.0, 0.0, 0.0, 0.0], "ghost": [0, 1.0, 0, 0]}
ROWS = {  # id: (vector, label); images live in dimensions 2 and 3, texts in 0 and 1
    "a": ([1.0, 0.0, 0.0, 0.0], "cat"),
    "b": ([0.8, 0.6, 0.0, 0.0], "dog"),
    "c": ([0.6, 0.8, 0.0, 0.0], "cat"),
    "d": ([0.0, 1.0, 0.0, 0.0], "dog"),
}


def image_vector(rgb: np.ndarray) -> list[float]:
    """A fake image embedding: mean red and green, in dimensions 2 and 3."""
    mean = rgb.reshape(-1, 3).mean(axis=0) / 255.0
    return [0.0, 0.0, float(mean[0]), float(mean[1])]


class FakeEmbedder(Embedder):
    """Fixed vectors for known texts; images by mean colour."""

    model_id = "fake/1"
    dim = 4
    batch_size = 8

    def embed_batch(self, batch: Sequence[Any], modality: Modality) -> np.ndarray:
        if modality is Modality.TEXT:
            return np.array([TEXTS[text] for text in batch], dtype=np.float32)
        return np.array([image_vector(rgb) for rgb in batch], dtype=np.float32)


def write_png(path: Path, rgb: tuple[int, int, int]) -> Path:
    image = np.zeros((16, 16, 3), dtype=np.uint8)
    image[:] = rgb
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return path


@pytest.fixture
def collection(tmp_path: Path) -> Iterator[tuple[VectorStore, Path]]:
    """Four text-like rows and two red images (one of them is the image query's file)."""
    store = open_store(str(tmp_path / "eval.db"), "evalfake")
    store.ensure_collection(4, FakeEmbedder.model_id)
    records = [
        Record(id=i, vector=l2_normalize(np.array(v))[0], source=f"/x/{i}.jpg",
               metadata={"label": label}, model_id=FakeEmbedder.model_id)
        for i, (v, label) in ROWS.items()
    ]
    query = write_png(tmp_path / "query.png", (200, 30, 30))
    for path in (query, write_png(tmp_path / "other.png", (190, 40, 30))):
        vector = l2_normalize(np.array(image_vector(decode_image(path.read_bytes()))))[0]
        records.append(Record(id=content_id(path.read_bytes()), vector=vector, source=str(path),
                              metadata={"label": "red"}, model_id=FakeEmbedder.model_id))
    store.upsert(records)
    store.flush()
    yield store, query
    store.close()


def write_queries(path: Path, lines: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


QUERIES: list[dict[str, Any]] = [
    {"id": "first", "query": "first", "relevant": ["b"]},
    {"id": "cats", "query": "cats", "relevant_where": {"label": "cat"}},
    {"id": "ghost", "query": "ghost", "relevant": ["nope"]},
    {"id": "red", "image": "query.png", "relevant_where": {"label": "red"}},
]


def run_eval(collection: tuple[VectorStore, Path], **options: bool) -> EvalReport:
    store, query = collection
    queries = load_queries(write_queries(query.parent / "q.jsonl", QUERIES))
    return evaluate(FakeEmbedder(), store, queries, EvalOptions(**options))


def test_metrics_per_query_and_per_task(collection: tuple[VectorStore, Path]) -> None:
    report = run_eval(collection)
    by_id = {r.query.qid: r for r in report.results}
    assert report.skipped == ["ghost"] and report.missing == ["nope"]
    first = by_id["first"].metrics
    assert (first["recall@1"], first["recall@5"], first["mrr"]) == (0.0, 1.0, 0.5)
    cats = by_id["cats"]
    assert cats.relevant == {"a", "c"}
    assert [r.id for r in cats.ranking[:3]] == ["a", "b", "c"]
    assert cats.metrics["recall@1"] == 0.5 and cats.metrics["precision@5"] == pytest.approx(0.4)
    ideal = 1 + 1 / math.log2(3)
    assert cats.metrics["ndcg@10"] == pytest.approx((1 + 1 / math.log2(4)) / ideal)
    red = by_id["red"]
    assert len(red.relevant) == 1 and red.ranking[0].id in red.relevant  # itself left out
    assert all(r.id != content_id(collection[1].read_bytes()) for r in red.ranking)
    assert red.metrics["recall@1"] == 1.0
    tasks = {t.task: t for t in report.tasks}
    assert tasks["text→image"].queries == 2 and tasks["image→image"].queries == 1
    assert tasks["text→image"].metrics["mrr"] == pytest.approx(0.75)


def test_keep_self_lets_an_image_find_itself(collection: tuple[VectorStore, Path]) -> None:
    red = {r.query.qid: r for r in run_eval(collection, keep_self=True).results}["red"]
    assert red.ranking[0].id == content_id(collection[1].read_bytes())
    assert red.ranking[0].score == pytest.approx(1.0, abs=1e-5)
    assert len(red.relevant) == 2 and red.metrics["recall@1"] == 0.5


def test_exact_search_matches_the_flat_index(collection: tuple[VectorStore, Path]) -> None:
    report = run_eval(collection, exact=True)
    for result in report.results:
        assert result.ann_recall == 1.0
        assert result.exact_ranking is not None
        assert result.exact_ranking[0].id == result.ranking[0].id
        exact_scores = [r.score for r in result.exact_ranking]
        assert exact_scores == pytest.approx([r.score for r in result.ranking], abs=1e-5)
    for task in report.tasks:
        assert task.ann_recall == 1.0
        assert task.exact_metrics == pytest.approx(task.metrics)


def test_eval_command_with_a_real_model(
    tmp_path: Path, tiny_model_files: tuple[Path, Path], tiny_embedder: Embedder,
    make_image_files: Any, capsys: pytest.CaptureFixture[str],
) -> None:
    config, checkpoint = tiny_model_files
    settings = Settings(uri=str(tmp_path / "cli.db"), collection="cli", model=str(config),
                        pretrained=None, checkpoint=checkpoint, device="cpu", batch_size=4)
    files = make_image_files(6, ext=".png")
    components = build_components(settings)
    components._embedder = tiny_embedder
    try:
        run_ingest(components, open_source(files[0].parent), IngestOptions(batch_size=4))
    finally:
        components.close()
    ids = [content_id(f.read_bytes()) for f in files]
    queries = write_queries(tmp_path / "q.jsonl", [
        {"query": "a photo", "relevant": ids[:2]},
        {"image": str(files[0]), "relevant": ids[:3]},
    ])
    flags = ["--uri", settings.uri, "--collection", "cli", "--model", str(config),
             "--checkpoint", str(checkpoint), "--device", "cpu"]
    assert main(["eval", str(queries), *flags, "--json", "--exact", "--per-query"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["items"] == 6 and out["exact"] is True
    assert [t["task"] for t in out["tasks"]] == ["text→image", "image→image"]
    assert all(t["ann_recall@10"] == 1.0 for t in out["tasks"])
    image = out["queries"][1]
    assert image["relevant"] == 2 and ids[0] not in image["ranking"]
    assert len(image["ranking"]) == 5
    assert main(["eval", str(queries), *flags]) == 0
    table = capsys.readouterr().out
    assert "text→image" in table and "image→image" in table and "nDCG@10" in table
