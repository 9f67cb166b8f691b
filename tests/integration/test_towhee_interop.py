"""The same pipelines on towhee 1.1.3's own runtime and on mmrag's engine give identical results.

Operators are pure numpy/python and registered in both registries under the same names, so
nothing is downloaded and no model is needed.
"""

from __future__ import annotations

import csv
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

import pipelines

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)  # towhee imports the deprecated pkg_resources
    towhee = pytest.importorskip("towhee")


class Decode:
    """A stand-in "decoder": a number becomes a small float vector."""

    def __init__(self, dim: int = 4) -> None:
        self.dim = dim

    def __call__(self, x: int) -> np.ndarray:
        return np.arange(1, self.dim + 1, dtype=np.float32) * (x + 1)


class Normalize:
    """L2-normalise a vector."""

    def __call__(self, vec: np.ndarray) -> np.ndarray:
        return vec / np.linalg.norm(vec)


class MeanVec:
    """Window operator: the ids of a window and the mean of its vectors."""

    def __call__(self, ids: list[int], vecs: list[np.ndarray]) -> tuple[list[int], np.ndarray]:
        return list(ids), np.mean(np.stack(vecs), axis=0)


def chunks(n: int) -> Iterator[int]:
    yield from range(n)


OPERATORS: dict[str, type] = {
    "interop-test/decode": Decode,
    "interop-test/normalize": Normalize,
    "interop-test/mean-vec": MeanVec,
}


@pytest.fixture(scope="module", autouse=True)
def registered() -> Iterator[None]:
    for name, cls in OPERATORS.items():
        towhee.register(name=name)(cls)
        pipelines.register(name=name)(cls)
    yield
    for name in OPERATORS:
        pipelines.unregister(name)


def plain(value: Any) -> Any:
    """Arrays become rounded nested lists so results compare with ==."""
    if isinstance(value, np.ndarray):
        return np.round(value.astype(np.float64), 6).tolist()
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value


def rows_of(result: Any) -> list[Any]:
    out = []
    while (row := result.get()) is not None:
        out.append(plain(row))
    return out


Builder = Callable[[Any, Any], Any]


def embed_window(pipe: Any, ops: Any) -> Any:
    return (
        pipe.input("n", "tag")
        .flat_map("n", "i", chunks)
        .map("i", "vec", ops.interop_test.decode(dim=3))
        .map("vec", "vec", ops.interop_test.normalize())
        .filter(("i", "vec"), ("i", "vec"), "i", lambda i: i % 3 != 1)
        .map("tag", "label", lambda t: t.upper())
        .window(("i", "vec"), ("ids", "mean"), 3, 2, ops.interop_test.mean_vec())
        .output("label", "ids", "mean")
    )


def broadcast_total(pipe: Any, ops: Any) -> Any:
    return (
        pipe.input("n")
        .flat_map("n", "i", chunks)
        .map("i", ("sq", "neg"), lambda i: (i * i, -i))
        .window_all("sq", "total", sum)
        .output("i", "neg", "total")
    )


def single_valued(pipe: Any, ops: Any) -> Any:
    return (
        pipe.input("a", "b")
        .map("a", "vec", ops.interop_test.decode())
        .filter("b", "kept", "a", lambda a: a > 2)
        .map("vec", "norm", lambda v: float(np.linalg.norm(v)))
        .output("kept", "norm")
    )


def scalar_after_rows(pipe: Any, ops: Any) -> Any:
    return (
        pipe.input("n")
        .flat_map("n", "i", chunks)
        .map("n", "m", lambda n: n * 100)
        .window("i", "pairs", 2, 1, list)
        .output("m")
    )


def discard_and_generators(pipe: Any, ops: Any) -> Any:
    sink: list[Any] = []
    return (
        pipe.input("n")
        .map("n", (), sink.append)
        .map("n", "g", chunks)
        .flat_map("g", ("x", "y"), lambda g: [(v, v * 10) for v in g])
        .window_all(("x", "y"), ("sx", "sy"), lambda xs, ys: (sum(xs), sum(ys)))
        .output("n", "sx", "sy")
    )


def rowless_frames(pipe: Any, ops: Any) -> Any:
    return (
        pipe.input("n")
        .flat_map("n", "i", chunks)
        .filter("i", "i", "i", lambda i: i > 2)
        .map("n", "m", lambda n: n * 100)
        .output("m")
    )


def rowless_frames_with_rows_out(pipe: Any, ops: Any) -> Any:
    return (
        pipe.input("n")
        .flat_map("n", "i", chunks)
        .filter("i", "i", "i", lambda i: i > 2)
        .map("n", "m", lambda n: n * 100)
        .output("i", "m")
    )


def nested_flat_maps(pipe: Any, ops: Any) -> Any:
    return (
        pipe.input("n", "s")
        .flat_map("n", "i", chunks)
        .flat_map("i", "j", chunks)
        .map(("j", "s"), "js", lambda j, s: f"{s}{j}")
        .output("s", "js")
    )


def filter_frames_with_rows(pipe: Any, ops: Any) -> Any:
    return (
        pipe.input("n")
        .flat_map("n", "i", chunks)
        .filter("n", "n", "n", lambda n: n != 2)
        .output("n", "i")
    )


CASES: list[tuple[Builder, list[tuple[Any, ...]]]] = [
    (filter_frames_with_rows, [(1,), (2,), (3,)]),
    (rowless_frames, [(5,), (2,)]),
    (rowless_frames_with_rows_out, [(5,), (2,)]),
    (nested_flat_maps, [(4, "a"), (0, "b"), (1, "c")]),
    (embed_window, [(10, "cat"), (1, "dog"), (0, "eel"), (7, "fox")]),
    (broadcast_total, [(5,), (0,), (1,)]),
    (single_valued, [(1, "x"), (3, "y")]),
    (scalar_after_rows, [(4,), (0,)]),
    (discard_and_generators, [(4,), (0,)]),
]


@pytest.mark.parametrize(("build", "inputs"), CASES, ids=[c[0].__name__ for c in CASES])
def test_same_rows_on_towhee_and_mmrag(build: Builder, inputs: list[tuple[Any, ...]]) -> None:
    theirs = build(towhee.pipe, towhee.ops)
    ours = build(pipelines.pipe, pipelines.ops)
    for args in inputs:
        expected = rows_of(theirs(*args))
        assert rows_of(ours(*args)) == expected, args
    assert any(rows_of(theirs(*args)) for args in inputs)  # the cases are not all empty


@pytest.mark.parametrize(("build", "inputs"), CASES, ids=[c[0].__name__ for c in CASES])
def test_same_batch_results(build: Builder, inputs: list[tuple[Any, ...]]) -> None:
    theirs = build(towhee.pipe, towhee.ops)
    ours = build(pipelines.pipe, pipelines.ops)
    batch = [a[0] if len(a) == 1 else a for a in inputs]
    expected = [rows_of(r) for r in theirs.batch(batch)]
    assert [rows_of(r) for r in ours.batch(batch)] == expected
    streamed = [plain(row) for row in ours.stream(batch)]
    assert streamed == [row for rows in expected for row in rows]


def test_single_output_column_get_is_a_one_item_list_in_both() -> None:
    for mod in (towhee, pipelines):
        p = mod.pipe.input("a").map("a", "b", lambda x: x + 1).output("b")
        res = p(1)
        assert res.get() == [2]
        assert res.get() is None


def test_to_list_matches() -> None:
    theirs = broadcast_total(towhee.pipe, towhee.ops)(4).to_list()
    ours = broadcast_total(pipelines.pipe, pipelines.ops)(4).to_list()
    assert ours == theirs


# ----- the notebooks' pipelines with mmrag's operators on both runtimes ---------------------

MMRAG_OPERATORS = (
    "image-decode/cv2", "image-text-embedding/clip", "towhee/np-normalize",
    "ann-insert/milvus-client", "ann-search/milvus-client",
)


def notebook_insert(pipe: Any, ops: Any, clip_args: dict[str, Any], uri: str) -> Any:
    """text_image_search's insert pipeline: CSV rows -> decode -> clip -> normalise -> insert."""

    def read_csv(csv_path: str) -> Iterator[tuple[int, str]]:
        with open(csv_path, encoding="utf-8-sig") as f:
            for line in csv.DictReader(f):
                yield int(line["id"]), line["path"]

    return (
        pipe.input("csv_file")
        .flat_map("csv_file", ("id", "path"), read_csv)
        .map("path", "img", ops.image_decode.cv2("rgb"))
        .map("img", "vec", ops.image_text_embedding.clip(modality="image", **clip_args))
        .map("vec", "vec", ops.towhee.np_normalize())
        .map(("id", "vec"), (), ops.ann_insert.milvus_client(uri=uri, collection_name="tis"))
        .output()
    )


def notebook_search(pipe: Any, ops: Any, clip_args: dict[str, Any], uri: str) -> Any:
    """The text search of the notebook, its ids kept with their L2 distances."""
    return (
        pipe.input("text")
        .map("text", "vec", ops.image_text_embedding.clip(modality="text", **clip_args))
        .map("vec", "vec", lambda x: x / np.linalg.norm(x))
        .map("vec", "result", ops.ann_search.milvus_client(uri=uri, collection_name="tis",
                                                           limit=4))
        .map("result", "image_ids", lambda x: [item[0] for item in x])
        .output("text", "image_ids", "result")
    )


def make_notebook_collection(uri: str, dim: int) -> None:
    from pymilvus import DataType, MilvusClient

    client = MilvusClient(uri=uri)
    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=dim)
    index = client.prepare_index_params()
    index.add_index("embedding", index_type="IVF_FLAT", metric_type="L2", params={"nlist": 16})
    client.create_collection("tis", schema=schema, index_params=index)
    client.close()


def test_notebook_pipelines_give_the_same_rows_on_towhees_runtime(
    tmp_path: Any, make_image_files: Any, tiny_model_files: Any, tiny_embedder: Any,
    private_lite_home: Any,
) -> None:
    from pipelines import resolve
    from tests.support.tiny_model import TINY_MODEL_NAME

    files = make_image_files(6)
    csv_path = tmp_path / "reverse_image_search.csv"
    csv_path.write_text(
        "id,path,label\n" + "".join(f"{i},{f},x\n" for i, f in enumerate(files)), "utf-8"
    )
    for name in MMRAG_OPERATORS:  # mmrag's operators, registered in towhee's own registry
        towhee.register(name=name)(resolve(name))
    clip_args = {"model_name": TINY_MODEL_NAME, "checkpoint_path": str(tiny_model_files[1]),
                 "device": "cpu"}
    answers = []
    for runtime in (towhee, pipelines):
        uri = str(tmp_path / f"{runtime.__name__}.db")
        make_notebook_collection(uri, tiny_embedder.dim)
        notebook_insert(runtime.pipe, runtime.ops, clip_args, uri)(str(csv_path))
        search = notebook_search(runtime.pipe, runtime.ops, clip_args, uri)
        answers.append([
            [e.text, e.image_ids, [round(float(r[1]), 4) for r in e.result]]
            for e in runtime.DataCollection(search.batch(["a dog", "a red car"])[1])
        ] + [plain(search("a dog").get())[:2]])
    theirs, ours = answers
    assert ours == theirs
    assert theirs[0][0] == "a red car" and len(theirs[0][1]) == 4
