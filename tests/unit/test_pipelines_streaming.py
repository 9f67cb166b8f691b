"""pipelines: streaming through bounded queues keeps memory flat and reads input lazily."""

from __future__ import annotations

import gc
import itertools
import time
from collections.abc import Iterator

import psutil

from pipelines import pipe

MILLION = 1_000_000


def test_a_million_rows_stream_in_flat_memory() -> None:
    p = (
        pipe.input("n")
        .flat_map("n", "i", range)
        .map("i", "sq", lambda i: i * 3)
        .filter("sq", "kept", "sq", lambda v: v % 2 == 0)
        .output("kept")
    )
    proc = psutil.Process()
    gc.collect()
    before = proc.memory_info().rss
    peak = before
    count = total = 0
    started = time.perf_counter()
    res = p.lazy(MILLION)
    while (row := res.get()) is not None:
        count += 1
        total += row[0]
        if count % 50_000 == 0:
            peak = max(peak, proc.memory_info().rss)
    elapsed = time.perf_counter() - started
    growth_mb = (peak - before) / 2**20
    print(f"\n1M rows: {MILLION / elapsed:,.0f} input rows/s, RSS growth {growth_mb:.1f} MiB")
    assert count == MILLION // 2
    assert total == sum(3 * i for i in range(0, MILLION, 2))
    assert growth_mb < 50
    assert elapsed < 20


def test_stream_reads_its_input_lazily() -> None:
    pulled = 0

    def numbers() -> Iterator[int]:
        nonlocal pulled
        for i in itertools.count():
            pulled += 1
            yield i

    p = pipe.input("x").map("x", "y", lambda x: x + 1).output("y")
    gen = p.stream(numbers())
    assert [next(gen) for _ in range(5)] == [[1], [2], [3], [4], [5]]
    time.sleep(0.2)
    assert pulled < 5_000  # bounded queues stop the feeder long before the input ends
    gen.close()


def test_first_row_arrives_before_the_input_is_exhausted() -> None:
    p = pipe.input("n").flat_map("n", "i", range).map("i", "j", lambda i: -i).output("j")
    started = time.perf_counter()
    res = p.lazy(10**15)
    assert res.get() == [0]
    assert time.perf_counter() - started < 2
    res.close()


def test_throughput_of_a_trivial_three_node_pipeline() -> None:
    p = (
        pipe.input("n")
        .flat_map("n", "i", range)
        .map("i", "j", lambda i: i + 1)
        .map("j", "k", lambda j: j + 1)
        .output("k")
    )
    n = 300_000
    started = time.perf_counter()
    count = sum(1 for _ in p.lazy(n))
    rate = n / (time.perf_counter() - started)
    print(f"\n3-node pipeline: {rate:,.0f} rows/s")
    assert count == n
    assert rate > 50_000  # generous floor for a shared 2-core machine
