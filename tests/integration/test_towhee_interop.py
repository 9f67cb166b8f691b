"""The same pipelines on towhee 1.1.3's own runtime and on mmrag's engine give identical results.

Operators are pure numpy/python and registered in both registries under the same names, so
nothing is downloaded and no model is needed.
"""

from __future__ import annotations

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
