"""Unit tests of the API's parts: micro-batcher, LRU cache, filters, MMR, metrics text."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from starlette.datastructures import Headers

from retrieval.api.batching import LruCache, TextBatcher
from retrieval.api.errors import ApiError
from retrieval.api.filters import build_expression, requested_keys
from retrieval.api.metrics import ApiMetrics, Histogram
from retrieval.api.middleware import api_key_matches
from retrieval.mmr import mmr_order


class FakeModel:
    """Records every call; one vector per text, derived from its hash; optionally slow."""

    def __init__(self, delay_s: float = 0.0, fail: bool = False) -> None:
        self.calls: list[list[str]] = []
        self.threads: set[str] = set()
        self.delay_s = delay_s
        self.fail = fail

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(list(texts))
        self.threads.add(threading.current_thread().name)
        time.sleep(self.delay_s)
        if self.fail:
            raise RuntimeError("model exploded")
        out = np.stack([np.random.default_rng(abs(hash(t)) % 2**32).normal(size=8) for t in texts])
        return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


def run_batcher(model: FakeModel, texts: list[str], **kwargs: object) -> list[np.ndarray]:
    async def main() -> list[np.ndarray]:
        with ThreadPoolExecutor(1, thread_name_prefix="model") as pool:
            batcher = TextBatcher(model, pool, **kwargs)  # type: ignore[arg-type]
            result = await asyncio.gather(*(batcher.embed(t) for t in texts))
            await batcher.close()
            return list(result)

    return asyncio.run(main())


def test_concurrent_texts_share_one_model_call() -> None:
    model = FakeModel()
    texts = [f"q{i}" for i in range(10)]
    vectors = run_batcher(model, texts, window_s=0.01, max_batch=32)
    assert len(model.calls) == 1 and sorted(model.calls[0]) == sorted(texts)
    assert model.threads == {"model_0"}
    for text, vector in zip(texts, vectors, strict=True):
        np.testing.assert_allclose(vector, model([text])[0], atol=1e-6)


def test_batches_are_bounded_and_duplicates_deduplicated() -> None:
    model = FakeModel(delay_s=0.01)
    texts = [f"q{i % 20}" for i in range(60)]
    vectors = run_batcher(model, texts, window_s=0.005, max_batch=8)
    assert all(len(call) <= 8 for call in model.calls)
    assert sum(len(call) for call in model.calls) == 20  # each distinct text embedded once
    for i in range(20, 60):
        np.testing.assert_array_equal(vectors[i], vectors[i % 20])


def test_cache_serves_repeats_without_model_calls() -> None:
    model = FakeModel()
    cache = LruCache(4)
    lookups: list[bool] = []

    async def main() -> None:
        with ThreadPoolExecutor(1) as pool:
            batcher = TextBatcher(
                model, pool, window_s=0.001, cache=cache, on_lookup=lookups.append
            )
            first = await batcher.embed("dog")
            again = await batcher.embed("dog")
            np.testing.assert_array_equal(first, again)
            assert not again.flags.writeable
            for text in ("a", "b", "c", "d"):
                await batcher.embed(text)
            await batcher.embed("dog")  # evicted: embedded again

    asyncio.run(main())
    assert [c for call in model.calls for c in call] == ["dog", "a", "b", "c", "d", "dog"]
    assert lookups == [False, True, False, False, False, False, False]
    assert len(cache) == 4


def test_model_errors_reach_every_waiter_and_the_batcher_recovers() -> None:
    model = FakeModel(fail=True)

    async def main() -> None:
        with ThreadPoolExecutor(1) as pool:
            batcher = TextBatcher(model, pool, window_s=0.005)
            results = await asyncio.gather(
                *(batcher.embed(t) for t in ("x", "y", "x")), return_exceptions=True
            )
            assert all(isinstance(r, RuntimeError) for r in results)
            model.fail = False
            assert (await batcher.embed("x")).shape == (8,)

    asyncio.run(main())


def test_a_cancelled_waiter_does_not_cancel_the_others() -> None:
    model = FakeModel(delay_s=0.05)

    async def main() -> None:
        with ThreadPoolExecutor(1) as pool:
            batcher = TextBatcher(model, pool, window_s=0.005)
            leaving = asyncio.ensure_future(batcher.embed("same"))
            staying = asyncio.ensure_future(batcher.embed("same"))
            await asyncio.sleep(0.01)
            leaving.cancel()
            assert (await staying).shape == (8,)
            await batcher.close()

    asyncio.run(main())


def test_the_event_loop_keeps_running_during_model_calls() -> None:
    model = FakeModel(delay_s=0.2)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    async def main() -> None:
        with ThreadPoolExecutor(1) as pool:
            batcher = TextBatcher(model, pool, window_s=0.001)
            task = asyncio.ensure_future(ticker())
            await batcher.embed("slow")
            task.cancel()

    asyncio.run(main())
    assert ticks >= 10


# ----- filters ---------------------------------------------------------------------------------


KEYS = frozenset({"label", "year", "source", "taken"})


def test_filter_expressions_are_quoted() -> None:
    expr = build_expression({"label": 'a"b\\c', "year": {"gte": 2020, "lt": 2024.5}}, KEYS)
    assert expr == (
        '(metadata["label"] == "a\\"b\\\\c") and (metadata["year"] >= 2020) '
        'and (metadata["year"] < 2024.5)'
    )
    assert build_expression({"caption": ["x", "y"]}, KEYS) == '(caption in ["x", "y"])'
    assert build_expression({"year": {"in": [1, 2.5]}}, KEYS) == (
        '(metadata["year"] in [1.0, 2.5])'
    )
    assert build_expression({"label": {"nin": ["a"]}}, KEYS) == '(metadata["label"] not in ["a"])'
    assert build_expression({"label": {"contains": "5%_\\"}}, KEYS) == (
        '(metadata["label"] like "%5\\\\%\\\\_\\\\\\\\%")'
    )
    assert build_expression({"source": "/a"}, KEYS) == '(source == "/a")'
    assert build_expression({"metadata.source": "/a"}, KEYS) == '(metadata["source"] == "/a")'
    assert build_expression({}, KEYS) is None and build_expression(None, KEYS) is None


def test_filter_field_names_are_checked() -> None:
    assert requested_keys({"label": 1, "id": "x", "metadata.year": 2}) == ["label", "year"]
    for bad in ("1abc", "a b", "a.b", 'x"]', "metadata.", "metadata.a-b", "", "é"):
        with pytest.raises(ApiError) as caught:
            requested_keys({bad: 1})
        assert caught.value.status == 422
    with pytest.raises(ApiError) as caught:
        build_expression({"colour": "red"}, KEYS)
    assert caught.value.type == "unknown_filter_field" and "colour" in caught.value.message
    with pytest.raises(ApiError):
        requested_keys({f"k{i}": 1 for i in range(17)})


# ----- MMR, metrics, API key ---------------------------------------------------------------


def test_mmr_prefers_relevance_then_spread() -> None:
    query = np.array([1.0, 0.0, 0.0], dtype=np.float32)
    near = np.array([0.95, 0.31, 0.0])
    candidates = np.stack([near, near, np.array([0.8, 0.0, 0.6])]).astype(np.float32)
    assert mmr_order(query, candidates, 3, 0.0) == [0, 1, 2]
    assert mmr_order(query, candidates, 2, 0.6) == [0, 2]  # the duplicate is pushed back
    assert mmr_order(query, candidates, 5, 0.5)[0] == 0
    assert mmr_order(query, candidates[:0], 3, 0.5) == []
    with pytest.raises(ValueError):
        mmr_order(query, candidates, 2, 1.5)


def test_metrics_text_format() -> None:
    metrics = ApiMetrics()
    metrics.requests.inc("GET", '/a"b', "200")
    metrics.latency.observe(0.003, "GET", "/x")
    metrics.latency.observe(20.0, "GET", "/x")
    text = metrics.render()
    assert 'mmrag_http_requests_total{method="GET",route="/a\\"b",status="200"} 1' in text
    bucket = 'mmrag_http_request_duration_seconds_bucket{method="GET",route="/x",le="%s"} %d'
    assert bucket % ("0.0025", 0) in text
    assert bucket % ("0.005", 1) in text
    assert bucket % ("+Inf", 2) in text
    assert 'mmrag_http_request_duration_seconds_count{method="GET",route="/x"} 2' in text
    histogram = Histogram("h", "help", ())
    histogram.observe(1.5)
    assert histogram.count() == 1 and histogram.total() == 1.5


def test_api_key_comparison() -> None:
    assert api_key_matches(Headers({"authorization": "Bearer k1"}), "k1")
    assert api_key_matches(Headers({"x-api-key": "k1"}), "k1")
    assert api_key_matches(Headers({"authorization": "Bearer nope", "x-api-key": "k1"}), "k1")
    for headers in ({}, {"authorization": "Bearer k"}, {"authorization": "k1"},
                    {"authorization": "Bearer "}, {"x-api-key": "k10"}):
        assert not api_key_matches(Headers(headers), "k1")
    assert api_key_matches(Headers(raw=[(b"x-api-key", "clé".encode())]), "clé")
