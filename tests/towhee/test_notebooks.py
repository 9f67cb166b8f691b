"""The towhee notebooks' and bootcamp's patterns, with only the import line changed.

Collections are made with pymilvus first, as ``create_milvus_collection`` makes them; insert
pipelines run once over the CSV, or in a loop with their result never read; search pipelines
feed ``read_image``-style helpers and threshold filters on scores; results are shown with
``DataCollection(...).show()``. The tiny model stands in for CLIP (``checkpoint_path=``).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pymilvus import Collection, CollectionSchema, DataType, FieldSchema, utility

from pipelines import DataCollection, ops, pipe
from retrieval.stores import open_store
from tests.support.tiny_model import TINY_MODEL_NAME
from tests.towhee.conftest import IMAGES, Connection

DIM = 32  # the tiny model's width


@pytest.fixture
def clip_args(tiny_model_files: tuple[Path, Path], tiny_embedder: Any) -> dict[str, Any]:
    """towhee's clip arguments for the tiny model (its config registered by tiny_embedder)."""
    return {"model_name": TINY_MODEL_NAME, "checkpoint_path": str(tiny_model_files[1]),
            "device": "cpu"}


def csv_rows(csv_path: Path) -> list[dict[str, str]]:
    with csv_path.open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def create_milvus_collection(
    name: str, dim: int, *, pk: DataType = DataType.INT64, auto_id: bool = False,
    with_path: bool = False, metric: str = "L2",
) -> Collection:
    """The notebooks' helper: drop, create the schema, build an IVF_FLAT index."""
    if utility.has_collection(name):
        utility.drop_collection(name)
    key_args = {"max_length": 64} if pk == DataType.VARCHAR else {}
    fields = [FieldSchema(name="id", dtype=pk, is_primary=True, auto_id=auto_id, **key_args)]
    if with_path:
        fields.append(FieldSchema(name="path", dtype=DataType.VARCHAR, max_length=500))
    fields.append(FieldSchema(name="embedding", dtype=DataType.FLOAT_VECTOR, dim=dim))
    collection = Collection(name=name, schema=CollectionSchema(fields, description="search"))
    collection.create_index(
        field_name="embedding",
        index_params={"metric_type": metric, "index_type": "IVF_FLAT", "params": {"nlist": 16}},
    )
    return collection


def count_star(collection: Collection) -> int:
    collection.load()
    return int(collection.query(expr="", output_fields=["count(*)"])[0]["count(*)"])


def test_reverse_image_search_notebook(
    connection: Connection, orm: Any, notebook_dir: Path, clip_args: dict[str, Any], capsys
) -> None:
    collection = create_milvus_collection("reverse_image_search", DIM, auto_id=True,
                                          with_path=True)
    csv_path = notebook_dir / "reverse_image_search.csv"

    def load_image(x: str):
        if x.endswith("csv"):
            with open(x) as f:
                reader = csv.reader(f)
                next(reader)
                for item in reader:
                    yield item[1]
        else:
            yield x

    p_embed = (
        pipe.input("src")
        .flat_map("src", "img_path", load_image)
        .map("img_path", "img", ops.image_decode())
        .map("img", "vec", ops.image_text_embedding.clip(modality="image", **clip_args))
        .map("vec", "vec", ops.towhee.np_normalize())
    )
    p_insert = p_embed.map(
        ("img_path", "vec"), "mr",
        ops.ann_insert.milvus_client(collection_name="reverse_image_search", **connection.op_args),
    ).output("mr")
    paths = [row["path"] for row in csv_rows(csv_path)]
    for path in paths:  # called in a loop, its result never read
        p_insert(path)
    assert collection.num_entities == IMAGES
    assert count_star(collection) == IMAGES

    threshold = 1e-3
    p_search = (
        p_embed.map("vec", "search_res", ops.ann_search.milvus_client(
            collection_name="reverse_image_search", limit=3, output_fields=["path"],
            **connection.op_args))
        .map("search_res", "pred", lambda x: [y[2] for y in x if y[1] <= threshold])
        .output("img_path", "search_res", "pred")
    )
    for path in paths[:3]:
        img_path, res, pred = p_search(path).get()
        assert img_path == path
        assert pred == [path]  # only itself within the threshold: an L2 distance near 0
        assert isinstance(res[0][0], int)  # auto_id INT64 keys come back as ints
        assert res[0][1] == pytest.approx(0.0, abs=1e-4)
        assert res[0][1] <= res[1][1] <= res[2][1]  # distances: lower is nearer

    DataCollection(p_search(paths[0])).show()
    shown = capsys.readouterr().out
    assert "| img_path" in shown and "search_res" in shown and paths[0][:40] in shown


def test_text_image_search_insert_once_over_the_csv(
    connection: Connection, orm: Any, notebook_dir: Path, clip_args: dict[str, Any]
) -> None:
    collection = create_milvus_collection("text_image_search", DIM)

    def read_csv(csv_path: str, encoding: str = "utf-8-sig"):
        with open(csv_path, encoding=encoding) as f:
            for line in csv.DictReader(f):
                yield int(line["id"]), line["path"]

    p3 = (
        pipe.input("csv_file")
        .flat_map("csv_file", ("id", "path"), read_csv)
        .map("path", "img", ops.image_decode.cv2("rgb"))
        .map("img", "vec", ops.image_text_embedding.clip(modality="image", **clip_args))
        .map("vec", "vec", lambda x: x / np.linalg.norm(x))
        .map(("id", "vec"), (), ops.ann_insert.milvus_client(
            collection_name="text_image_search", **connection.op_args))
        .output()
    )
    p3(str(notebook_dir / "reverse_image_search.csv"))
    collection.load()
    assert collection.num_entities == IMAGES

    p4 = (
        pipe.input("text")
        .map("text", "vec", ops.image_text_embedding.clip(modality="text", **clip_args))
        .map("vec", "vec", lambda x: x / np.linalg.norm(x))
        .map("vec", "result", ops.ann_search.milvus_client(
            collection_name="text_image_search", limit=5, **connection.op_args))
        .map("result", "image_ids", lambda x: [item[0] for item in x])
        .output("text", "image_ids")
    )
    results = p4.batch(["A white dog", "a red car"])
    ids = [r.get_dict()["image_ids"] for r in results]
    assert all(len(i) == 5 and all(isinstance(x, int) for x in i) for i in ids)
    assert all(set(i) <= set(range(IMAGES)) for i in ids)


@pytest.mark.parametrize("metric", ["L2", "IP", "COSINE"])
def test_varchar_keys_and_each_metric_report_scores_as_milvus_does(
    metric: str, tmp_path: Path, notebook_dir: Path, clip_args: dict[str, Any]
) -> None:
    from pymilvus import connections

    uri = str(tmp_path / "metrics.db")
    connections.connect(alias="default", uri=uri)
    try:
        create_milvus_collection("by_path", DIM, pk=DataType.VARCHAR, metric=metric)
        rows = csv_rows(notebook_dir / "reverse_image_search.csv")
        insert = (
            pipe.input("id", "path")
            .map("path", "img", ops.image_decode.cv2_rgb())
            .map("img", "vec", ops.image_text_embedding.clip(**clip_args), config={"batch_size": 3})
            .map(("id", "vec"), "mr",
                 ops.ann_insert.milvus_client(uri=uri, collection_name="by_path"),
                 config={"batch_size": 3})
            .output("mr")
        )
        insert.batch([(f"img-{r['id']}", r["path"]) for r in rows])
        search = (
            pipe.input("path")
            .map("path", "img", ops.image_decode.cv2_rgb())
            .map("img", "vec", ops.image_text_embedding.clip(**clip_args))
            .map("vec", "rows", ops.ann_search.milvus_client(uri=uri, collection_name="by_path",
                                                           limit=2))
            .output("rows")
        )
        (top, second), = search(rows[4]["path"]).get()
        assert top[0] == "img-4"
        if metric == "L2":
            assert top[1] == pytest.approx(0.0, abs=1e-4) and second[1] > top[1]
        else:  # similarities: higher is nearer, 1 for the image itself
            assert top[1] == pytest.approx(1.0, abs=1e-4) and second[1] < top[1]
    finally:
        connections.disconnect("default")


def test_readme_pipeline_on_mmrags_own_collection_needs_no_model_id(
    tmp_path: Path, notebook_dir: Path, clip_args: dict[str, Any]
) -> None:
    uri = str(tmp_path / "my.db")
    rows = csv_rows(notebook_dir / "reverse_image_search.csv")
    insert = (
        pipe.input("id", "path")
        .map("path", "img", ops.image_decode.cv2_rgb(), config={"workers": 2})
        .map("img", "vec", ops.image_text_embedding.clip(**clip_args), config={"batch_size": 4})
        .map(("id", "vec"), (), ops.ann_insert.milvus_client(uri=uri, collection="photos"),
             config={"batch_size": 4})
        .output()
    )
    insert.batch([(r["id"], r["path"]) for r in rows])
    with open_store(uri, "photos") as store:
        assert store.count() == IMAGES
        assert store.info().model_id.startswith(f"{TINY_MODEL_NAME}/ckpt-")
