"""pipelines: config={'batch_size': N} and config={'workers': N} on map and flat_map."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from pipelines import OperatorError, pipe


class BatchRecorder:
    """A batched operator that records every batch it is called with."""

    def __init__(self) -> None:
        self.batches: list[list[Any]] = []
        self.lock = threading.Lock()

    def __call__(self, xs: list[int]) -> list[int]:
        with self.lock:
            self.batches.append(list(xs))
        return [x * 2 for x in xs]


def test_batched_map_over_rows_flushes_the_partial_last_batch() -> None:
    rec = BatchRecorder()
    p = pipe.input("n").flat_map("n", "i", range).map("i", "d", rec, config={"batch_size": 4})
    rows = p.output("n", "i", "d")(10).to_list()
    assert rows == [[10, i, 2 * i] for i in range(10)]
    assert rec.batches == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_batched_map_over_inputs_batches_across_a_stream() -> None:
    rec = BatchRecorder()
    p = pipe.input("x").map("x", "y", rec, config={"batch_size": 3}).output("x", "y")
    assert list(p.stream(range(7))) == [[x, 2 * x] for x in range(7)]
    assert rec.batches == [[0, 1, 2], [3, 4, 5], [6]]


def test_batched_map_with_several_columns_in_and_out() -> None:
    def op(xs: list[int], ys: list[int]) -> tuple[list[int], list[int]]:
        pairs = list(zip(xs, ys, strict=True))
        return [x + y for x, y in pairs], [x * y for x, y in pairs]

    p = (
        pipe.input("a", "b")
        .map(("a", "b"), ("s", "m"), op, config={"batch_size": 2})
        .output("s", "m")
    )
    assert list(p.stream([(1, 2), (3, 4), (5, 6)])) == [[3, 2], [7, 12], [11, 30]]


def test_batched_map_mixing_row_and_single_valued_columns() -> None:
    p = (
        pipe.input("k", "n")
        .flat_map("n", "i", range)
        .map(
            ("k", "i"),
            "v",
            lambda ks, xs: [k * x for k, x in zip(ks, xs, strict=True)],
            config={"batch_size": 2},
        )
        .output("v")
    )
    assert list(p.stream([(10, 3), (100, 2)])) == [[0], [10], [20], [0], [100]]


def test_batched_result_of_wrong_length_is_an_operator_error() -> None:
    p = pipe.input("x").map("x", "y", lambda xs: xs[:-1], config={"batch_size": 2}).output("y")
    with pytest.raises(OperatorError, match="returned 1 results for 2 rows"):
        list(p.stream([1, 2, 3]))


def test_batched_flat_map_returns_one_iterable_per_row() -> None:
    calls: list[list[int]] = []

    def expand(ns: list[int]) -> list[range]:
        calls.append(list(ns))
        return [range(n) for n in ns]

    p = pipe.input("n").flat_map("n", "i", expand, config={"batch_size": 2}).output("n", "i")
    assert list(p.stream([2, 0, 3])) == [[2, 0], [2, 1], [3, 0], [3, 1], [3, 2]]
    assert calls == [[2, 0], [3]]


def test_workers_run_in_parallel_and_keep_order() -> None:
    active = 0
    peak = 0
    lock = threading.Lock()

    def slow(x: int) -> int:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.02 if x % 3 else 0.05)  # uneven durations would reorder a naive pool
        with lock:
            active -= 1
        return x * x

    p = pipe.input("x").map("x", "y", slow, config={"workers": 4}).output("y")
    started = time.perf_counter()
    rows = list(p.stream(range(24)))
    elapsed = time.perf_counter() - started
    assert rows == [[x * x] for x in range(24)]
    assert 2 <= peak <= 4
    assert elapsed < 24 * 0.03  # serial would take ~0.72 s


def test_workers_over_rows_keep_order() -> None:
    def jitter(i: int) -> int:
        time.sleep(0.001 * (i % 4))
        return -i

    p = pipe.input("n").flat_map("n", "i", range).map("i", "j", jitter, config={"workers": 3})
    assert p.output("j")(200).to_list() == [[-i] for i in range(200)]


def test_workers_bound_the_number_in_flight() -> None:
    pulled = 0

    def source() -> Any:
        nonlocal pulled
        for i in range(10_000):
            pulled += 1
            yield i

    release = threading.Event()

    def blocked(x: int) -> int:
        release.wait(5)
        return x

    p = pipe.input("x").map("x", "y", blocked, config={"workers": 2, "queue_size": 4}).output("y")
    gen = p.stream(source())
    got: list[list[Any]] = []
    thread = threading.Thread(target=lambda: got.append(next(gen)))
    thread.start()
    time.sleep(0.3)
    assert pulled < 2_000  # backpressure: bounded queues, at most 2*workers jobs in flight
    release.set()
    thread.join(5)
    assert got == [[0]]
    gen.close()


def test_workers_and_batches_combine() -> None:
    rec = BatchRecorder()

    def slow_batch(xs: list[int]) -> list[int]:
        time.sleep(0.01 * (len(xs) % 3))
        return rec(xs)

    p = (
        pipe.input("n")
        .flat_map("n", "i", range)
        .map("i", "d", slow_batch, config={"batch_size": 5, "workers": 3})
        .output("d")
    )
    assert p(53).to_list() == [[2 * i] for i in range(53)]
    sizes = sorted(len(b) for b in rec.batches)
    assert sizes == [3] + [5] * 10
    assert sorted(x for b in rec.batches for x in b) == list(range(53))


def test_flat_map_with_workers_keeps_order() -> None:
    def expand(n: int) -> list[int]:
        time.sleep(0.002 * (n % 3))
        return [n] * (n % 4)

    p = pipe.input("n").flat_map("n", "v", expand, config={"workers": 3}).output("v")
    expected = [[n] for n in range(30) for _ in range(n % 4)]
    assert list(p.stream(range(30))) == expected
