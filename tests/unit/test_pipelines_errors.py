"""pipelines: operator failures surface as OperatorError, and every thread winds down."""

from __future__ import annotations

import gc
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pipelines import OperatorError, PipelineError, ops, pipe, register, unregister
from pipelines.runtime import THREAD_PREFIX


def busy_threads(prefix: str = THREAD_PREFIX) -> list[str]:
    """Names of pipeline threads still working (idle pooled runners excluded)."""
    return [
        t.name
        for t in threading.enumerate()
        if t.name.startswith(prefix) and not t.name.endswith("idle")
    ]


def wait_quiet(prefix: str = THREAD_PREFIX, timeout: float = 5.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while busy_threads(prefix) and time.monotonic() < deadline:
        time.sleep(0.01)
    return busy_threads(prefix)


def fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError("three is not allowed")
    return x


def test_operator_error_names_the_function_and_row() -> None:
    p = pipe.input("n").flat_map("n", "i", range).map("i", "j", fail_on_three).output("j")
    res = p.lazy(10)
    with pytest.raises(OperatorError) as info:
        res.to_list()
    err = info.value
    assert isinstance(err, PipelineError)
    assert "fail_on_three" in err.op_name and "fail_on_three" in str(err)
    assert "{'i': 3}" in str(err)
    assert "ValueError: three is not allowed" in str(err)
    assert isinstance(err.__cause__, ValueError) and err.original is err.__cause__
    assert err.row == {"i": 3}
    with pytest.raises(OperatorError):  # sticky: never turned into "exhausted"
        res.get()
    assert res.join(5)
    assert wait_quiet(res.name + "-") == []


def test_operator_error_names_the_registered_operator() -> None:
    @register(name="test-err/explode")
    class Explode:
        def __call__(self, x: object) -> object:
            raise RuntimeError("kaboom")

    try:
        p = pipe.input("path").map("path", "img", ops.test_err.explode()).output("img")
        with pytest.raises(OperatorError, match=r"'test-err/explode' \(map #0.*'path': 'a.jpg'"):
            p("a.jpg").get()
    finally:
        unregister("test-err/explode")


def test_row_repr_is_truncated() -> None:
    p = pipe.input("blob").map("blob", "x", lambda b: 1 / 0).output("x")
    with pytest.raises(OperatorError) as info:
        p("x" * 100_000).get()
    assert len(str(info.value)) < 700
    assert isinstance(info.value.__cause__, ZeroDivisionError)


@pytest.mark.parametrize(
    ("build", "kind"),
    [
        (lambda b: b.filter("i", "j", "i", lambda i: 1 // (i - 2)), "filter"),
        (lambda b: b.window("i", "j", 2, 1, lambda xs: 1 // (len(xs) - 2)), "window"),
        (lambda b: b.window_all("i", "j", lambda xs: 1 // 0), "window_all"),
        (lambda b: b.flat_map("i", "j", lambda i: range(1 // (i - 2))), "flat_map"),
        (lambda b: b.map("i", "j", fail_on_three, config={"workers": 3}), "map"),
        (lambda b: b.map("i", "j", lambda xs: 1 // 0, config={"batch_size": 4}), "map"),
        (
            lambda b: b.map("i", "j", lambda xs: 1 // 0, config={"batch_size": 2, "workers": 2}),
            "map",
        ),
    ],
)
def test_every_node_kind_raises_operator_error_and_stops(
    build: Callable[[Any], Any], kind: str
) -> None:
    p = build(pipe.input("n").flat_map("n", "i", range)).output("j")
    res = p.lazy(100)
    with pytest.raises(OperatorError, match=kind):
        res.to_list()
    assert res.join(5)
    assert wait_quiet(res.name + "-") == []


def test_error_in_a_long_stream_stops_all_threads() -> None:
    p = (
        pipe.input("x")
        .map("x", "y", lambda x: x + 1)
        .map("y", "z", lambda y: 1 // (y - 5000), config={"workers": 2})
        .filter("z", "z", "z", lambda z: True)
        .output("z")
    )
    gen = p.stream(itertools.count())
    with pytest.raises(OperatorError, match=r"'y': 5000"):
        for _ in gen:
            pass
    assert wait_quiet() == []


def test_closing_the_result_early_stops_the_threads() -> None:
    p = pipe.input("n").flat_map("n", "i", range).map("i", "j", lambda i: i * 2).output("j")
    res = p.lazy(10**12)
    assert [res.get() for _ in range(3)] == [[0], [2], [4]]
    res.close()
    assert res.join(5)
    assert wait_quiet(res.name + "-") == []
    assert res.get() is None  # closed by its reader: reads as exhausted


def test_dropping_the_result_stops_the_threads() -> None:
    p = pipe.input("n").flat_map("n", "i", range).output("i")
    res = p.lazy(10**12)
    assert res.get() == [0]
    name = res.name
    del res
    gc.collect()
    assert wait_quiet(name + "-") == []


def test_dropping_an_unread_result_warns() -> None:
    p = pipe.input("n").flat_map("n", "i", range).output("i")
    with pytest.warns(RuntimeWarning, match="dropped before it was read"):
        p.lazy(10**12)
        gc.collect()
    assert wait_quiet() == []


def test_closing_the_stream_generator_stops_the_threads() -> None:
    p = pipe.input("x").flat_map("x", "y", lambda x: [x] * 3).output("y")
    gen = p.stream(itertools.count())
    assert [next(gen) for _ in range(4)] == [[0], [0], [0], [1]]
    gen.close()
    assert wait_quiet() == []


def test_abandoned_stream_generator_stops_the_threads() -> None:
    p = pipe.input("x").output("x")
    gen = p.stream(itertools.count())
    assert next(gen) == [0]
    del gen
    gc.collect()
    assert wait_quiet() == []


def test_failing_input_iterator_surfaces_with_its_cause() -> None:
    def items() -> Iterator[int]:
        yield 1
        raise OSError("disk gone")

    p = pipe.input("x").output("x")
    with pytest.raises(PipelineError, match="input iterator raised OSError: disk gone") as info:
        list(p.stream(items()))
    assert isinstance(info.value.__cause__, OSError)
    assert wait_quiet() == []
