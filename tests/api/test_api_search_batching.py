"""Search micro-batching: SearchBatcher on its own, then through the app on a real Milvus Lite.

Concurrent plain searches that share model, collection, k, offset and filter become one store
call (counted by ``mmrag_search_seconds_count``, observed once per store call), and each request
still gets exactly the hits it gets alone. Also: the text-encode warm-up at model load.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import pytest

from retrieval.api import create_app
from retrieval.api.batching import SearchBatcher, warm_text_shapes
from retrieval.api.query_models import QueryVector
from retrieval.api.service import Service
from retrieval.embedders import create_embedder_from_settings
from retrieval.embedders.base import Embedder
from retrieval.embedders.text_trim import trimmed_length
from retrieval.errors import ModelMismatchError, StoreError
from retrieval.search import SearchRequest
from retrieval.types import Hit, Modality
from tests.api.helpers import ApiData

# ----- SearchBatcher on its own ------------------------------------------------------------


class BruteForce:
    """A real top-k search over a fixed matrix; records every call's key and row count."""

    def __init__(self, n: int = 40, dim: int = 8, delay_s: float = 0.0) -> None:
        rng = np.random.default_rng(7)
        self.matrix = rng.normal(size=(n, dim)).astype(np.float32)
        self.calls: list[tuple[Any, int]] = []
        self.delay_s = delay_s
        self.error: Exception | None = None
        self.drop_one = False
        self.gate: asyncio.Event | None = None  # when set, calls wait for it to open

    async def __call__(self, key: tuple[int, int], queries: np.ndarray) -> list[list[Hit]]:
        self.calls.append((key, len(queries)))
        await asyncio.sleep(self.delay_s)
        if self.gate is not None:
            await self.gate.wait()
        if self.error is not None:
            raise self.error
        found = [self.top(key, row) for row in queries]
        return found[:-1] if self.drop_one else found

    def top(self, key: tuple[int, int], row: np.ndarray) -> list[Hit]:
        """The page ``key = (k, offset)`` of the ranking of one query vector."""
        k, offset = key
        scores = self.matrix @ row
        order = np.argsort(-scores, kind="stable")[offset : offset + k]
        return [Hit(id=f"r{i}", score=float(scores[i]), source=f"/{i}.jpg") for i in order]


def queries(n: int, dim: int = 8, seed: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(size=dim).astype(np.float32) for _ in range(n)]


def hit_ids(hits: Sequence[Hit]) -> list[str]:
    return [h.id for h in hits]


def test_concurrent_searches_with_one_key_share_one_call() -> None:
    store = BruteForce()
    rows = queries(10)

    async def main() -> list[list[Hit]]:
        batcher = SearchBatcher(store, window_s=0.01, max_batch=32)
        found = await asyncio.gather(*(batcher.search((5, 0), row) for row in rows))
        await batcher.close()
        assert batcher.batches == 1 and batcher.searches == 10
        return list(found)

    found = asyncio.run(main())
    assert store.calls == [((5, 0), 10)]
    for row, hits in zip(rows, found, strict=True):
        assert hit_ids(hits) == hit_ids(store.top((5, 0), row))


def test_different_keys_are_never_mixed_and_batches_are_bounded() -> None:
    store = BruteForce()
    rows = queries(30)
    keys = [(1 + i % 3, i % 2) for i in range(30)]  # six (k, offset) pairs

    async def main() -> list[list[Hit]]:
        batcher = SearchBatcher(store, window_s=0.01, max_batch=4)
        found = await asyncio.gather(
            *(batcher.search(k, r) for k, r in zip(keys, rows, strict=True))
        )
        await batcher.close()
        return list(found)

    found = asyncio.run(main())
    for key, row, hits in zip(keys, rows, found, strict=True):
        assert hit_ids(hits) == hit_ids(store.top(key, row)) and len(hits) == key[0]
    assert all(size <= 4 for _, size in store.calls)
    for key in set(keys):
        assert sum(size for k, size in store.calls if k == key) == keys.count(key)
    assert len(store.calls) < len(rows)


def test_an_error_reaches_every_waiter_and_the_batcher_recovers() -> None:
    store = BruteForce()
    store.error = StoreError("milvus said no")
    rows = queries(5)

    async def main() -> None:
        batcher = SearchBatcher(store, window_s=0.005)
        results = await asyncio.gather(
            *(batcher.search((3, 0), row) for row in rows), return_exceptions=True
        )
        assert all(isinstance(r, StoreError) and "said no" in str(r) for r in results)
        assert len(store.calls) == 1
        store.error = None
        assert hit_ids(await batcher.search((3, 0), rows[0])) == hit_ids(
            store.top((3, 0), rows[0])
        )

    asyncio.run(main())


def test_a_short_answer_from_the_store_fails_every_waiter() -> None:
    store = BruteForce()
    store.drop_one = True

    async def main() -> list[Any]:
        batcher = SearchBatcher(store, window_s=0.005)
        rows = queries(3)
        return list(await asyncio.gather(
            *(batcher.search((2, 0), row) for row in rows), return_exceptions=True
        ))

    results = asyncio.run(main())
    assert all(isinstance(r, StoreError) and "2 hit lists for 3" in str(r) for r in results)


def test_a_cancelled_waiter_does_not_cancel_the_others() -> None:
    store = BruteForce(delay_s=0.05)
    rows = queries(2)

    async def main() -> None:
        batcher = SearchBatcher(store, window_s=0.005)
        leaving = asyncio.ensure_future(batcher.search((4, 0), rows[0]))
        staying = asyncio.ensure_future(batcher.search((4, 0), rows[1]))
        gone = asyncio.ensure_future(batcher.search((9, 0), rows[0]))  # alone in its batch
        await asyncio.sleep(0)  # all three wait for their batches
        gone.cancel()
        await asyncio.sleep(0.02)  # the (4, 0) batch is running now
        leaving.cancel()
        assert hit_ids(await staying) == hit_ids(store.top((4, 0), rows[1]))
        assert leaving.cancelled() and gone.cancelled()
        await batcher.close()

    asyncio.run(main())
    assert store.calls == [((4, 0), 2)]  # a batch nobody waits for any more is not searched


def test_a_lone_search_does_not_wait_for_the_window() -> None:
    store = BruteForce()
    row = queries(1)[0]

    async def main() -> list[Hit]:
        batcher = SearchBatcher(store, window_s=3600.0)  # the store is idle: no waiting
        return await asyncio.wait_for(batcher.search((3, 0), row), timeout=60.0)

    assert hit_ids(asyncio.run(main())) == hit_ids(store.top((3, 0), row))


async def start_held_call(
    store: BruteForce, batcher: SearchBatcher, key: tuple[int, int], row: np.ndarray
) -> asyncio.Future[list[Hit]]:
    """Start a search whose store call runs and is held (by a closed gate) until opened."""
    store.gate = asyncio.Event()
    started = asyncio.ensure_future(batcher.search(key, row))
    while not store.calls:
        await asyncio.sleep(0)
    return started


def test_searches_arriving_while_the_store_is_busy_share_the_next_call() -> None:
    store = BruteForce()
    rows = queries(5)

    async def main() -> None:
        batcher = SearchBatcher(store, window_s=3600.0)
        first = await start_held_call(store, batcher, (3, 0), rows[0])
        later = []
        for row in rows[1:]:  # one per loop turn, as separate requests would come
            later.append(asyncio.ensure_future(batcher.search((3, 0), row)))
            await asyncio.sleep(0)
        assert len(store.calls) == 1
        store.gate.set()  # the store is free: what waited goes as one call
        found = await asyncio.gather(first, *later)
        for row, hits in zip(rows, found, strict=True):
            assert hit_ids(hits) == hit_ids(store.top((3, 0), row))

    asyncio.run(asyncio.wait_for(main(), timeout=60.0))  # a regression fails, never hangs
    assert store.calls == [((3, 0), 1), ((3, 0), 4)]


def test_close_flushes_a_waiting_batch() -> None:
    store = BruteForce()
    rows = queries(4)

    async def main() -> None:
        batcher = SearchBatcher(store, window_s=3600.0)
        busy = await start_held_call(store, batcher, (2, 0), rows[0])
        waiting = [asyncio.ensure_future(batcher.search((2, 1), row)) for row in rows[1:]]
        await asyncio.sleep(0)
        assert len(store.calls) == 1  # the (2, 1) batch waits for the window
        closing = asyncio.ensure_future(batcher.close())
        await asyncio.sleep(0)
        store.gate.set()
        await closing
        assert busy.done() and all(task.done() for task in waiting)
        for row, task in zip(rows[1:], waiting, strict=True):
            assert hit_ids(task.result()) == hit_ids(store.top((2, 1), row))

    asyncio.run(asyncio.wait_for(main(), timeout=60.0))  # a regression fails, never hangs
    assert sorted(store.calls) == [((2, 0), 1), ((2, 1), 3)]


# ----- text-encode warm-up -----------------------------------------------------------------


class Recording(Embedder):
    """The real tiny model, recording the batch size and trimmed token length of text calls."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.model_id, self.dim = inner.model_id, inner.dim
        self.text_calls: list[tuple[int, int]] = []

    def embed_batch(self, batch: Sequence[Any], modality: Modality) -> np.ndarray:
        if modality is Modality.TEXT:
            tokens = self.inner.tokenizer([str(t) for t in batch])
            self.text_calls.append((len(batch), trimmed_length(tokens)))
        return np.asarray(self.inner.embed_batch(batch, modality))


def test_warm_up_encodes_each_short_length_once_at_batch_1(tiny_embedder: Embedder) -> None:
    recording = Recording(tiny_embedder)
    assert warm_text_shapes(recording, words=16) == 16
    assert [size for size, _ in recording.text_calls] == [1] * 16
    lengths = [length for _, length in recording.text_calls]
    assert len(set(lengths)) == 16 and lengths == sorted(lengths)


def test_warm_up_stops_at_its_time_budget(tiny_embedder: Embedder) -> None:
    recording = Recording(tiny_embedder)
    assert warm_text_shapes(recording, words=16, budget_s=0.0) == 0
    assert recording.text_calls == []


# ----- through the app ---------------------------------------------------------------------


@dataclass
class Served:
    """An app serving the shared collection: its async client and its Service."""

    http: httpx.AsyncClient
    service: Service

    async def search_calls(self) -> int:
        """Store search calls so far (mmrag_search_seconds observes one per call)."""
        text = (await self.http.get("/metrics")).text
        match = re.search(r"^mmrag_search_seconds_count (\d+)$", text, re.M)
        return int(match.group(1)) if match else 0

    async def search(self, vector: np.ndarray, params: SearchRequest) -> list[Hit]:
        """A search of the default collection with a given vector as the current model's query."""
        query = await self.service.models.as_query(vector)
        return await self.service.searches.search(query, None, params)

    async def hits(self, body: dict) -> list[tuple[str, float]]:
        response = await self.http.post("/search", json=body)
        assert response.status_code == 200, response.text
        return [(h["id"], h["score"]) for h in response.json()["hits"]]


@asynccontextmanager
async def serving(api_data: ApiData) -> AsyncIterator[Served]:
    """The app (lifespan run, model loaded) with a wide batching window."""
    app = create_app(api_data.settings_with(batch_window_ms=50.0))
    async with app.router.lifespan_context(app):
        service: Service = app.state.service
        await service.models.embedder()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
            yield Served(http, service)


def run_served(api_data: ApiData, test: Callable[[Served], Awaitable[None]]) -> None:
    async def main() -> None:
        async with serving(api_data) as served:
            await test(served)

    asyncio.run(main())


def same_hits(got: list[tuple[str, float]], alone: list[tuple[str, float]]) -> None:
    assert [i for i, _ in got] == [i for i, _ in alone]
    assert [s for _, s in got] == pytest.approx([s for _, s in alone], abs=1e-5)


TEXTS = ("a photo of a dog", "a cat", "a bird in the sky", "a fish", "something red")


def test_concurrent_searches_match_one_by_one_in_fewer_store_calls(api_data: ApiData) -> None:
    # vector searches are the batched ones (keyword and hybrid go to the store one by one)
    bodies = [{"query": f"{TEXTS[i % len(TEXTS)]} {i}", "k": 5, "mode": "vector"}
              for i in range(20)]

    async def test(served: Served) -> None:
        before = await served.search_calls()
        alone = [await served.hits(body) for body in bodies]
        assert await served.search_calls() - before == len(bodies)  # one call each, alone
        before = await served.search_calls()
        together = await asyncio.gather(*(served.hits(body) for body in bodies))
        calls = await served.search_calls() - before
        assert 1 <= calls < len(bodies)
        for got, expected in zip(together, alone, strict=True):
            same_hits(got, expected)

    run_served(api_data, test)


def test_pages_filters_and_collections_are_never_mixed(api_data: ApiData) -> None:
    variants: list[dict[str, Any]] = [
        {"k": 3}, {"k": 3, "offset": 2}, {"k": 6, "offset": 1},
        {"k": 4, "filter": {"label": "dog"}}, {"k": 4, "filter": {"label": "cat"}},
        {"k": 4, "filter": {"year": {"gte": 2020}}}, {"k": 5, "min_score": 0.0},
        {"k": 3, "collection": "other"}, {"k": 4, "diversity": 0.5},
    ]
    bodies = [{"query": TEXTS[i % len(TEXTS)], **variants[i % len(variants)]}
              for i in range(27)]

    async def test(served: Served) -> None:
        alone = [await served.hits(body) for body in bodies]
        assert any(alone[i] != alone[i + 1] for i in range(len(alone) - 1))
        before = await served.search_calls()
        together = await asyncio.gather(*(served.hits(body) for body in bodies))
        assert await served.search_calls() - before < len(bodies)
        for body, got, expected in zip(bodies, together, alone, strict=True):
            assert len(got) <= body["k"], body
            same_hits(got, expected)

    run_served(api_data, test)


def test_a_store_error_reaches_every_waiter_of_the_batch(api_data: ApiData) -> None:
    params = SearchRequest(k=3)
    wrong = queries(6, dim=16)  # the collection holds 32-d vectors: Milvus refuses the call

    async def test(served: Served) -> None:
        await served.hits({"query": "a dog"})  # the model check is done: all arrive at once
        before = await served.search_calls()
        results = await asyncio.gather(
            *(served.search(row, params) for row in wrong), return_exceptions=True
        )
        assert all(isinstance(r, ModelMismatchError) for r in results), results
        assert await served.search_calls() - before == 1  # one batch, one refused call

    run_served(api_data, test)


def test_a_malformed_vector_fails_alone(api_data: ApiData) -> None:
    params = SearchRequest(k=3)
    good = [q / np.linalg.norm(q) for q in queries(4, dim=32)]
    bad = np.full(32, np.nan, dtype=np.float32)

    async def test(served: Served) -> None:
        alone = [await served.search(row, params) for row in good]
        results = await asyncio.gather(
            *(served.search(row, params) for row in [*good[:2], bad, *good[2:]]),
            return_exceptions=True,
        )
        assert isinstance(results[2], StoreError)
        oks = [r for i, r in enumerate(results) if i != 2]
        for got, expected in zip(oks, alone, strict=True):
            assert not isinstance(got, BaseException), got
            assert hit_ids(got) == hit_ids(expected)

    run_served(api_data, test)


def test_queries_of_different_models_never_share_a_store_call(api_data: ApiData) -> None:
    params = SearchRequest(k=4)
    rows = [q / np.linalg.norm(q) for q in queries(10, dim=32, seed=11)]

    async def test(served: Served) -> None:
        service = served.service
        other = create_embedder_from_settings(api_data.settings)  # same weights, another model
        models = [await service.models.embedder(), other]

        async def search(i: int) -> list[Hit]:
            query = QueryVector(rows[i], models[i % 2], "items")  # as embed_text returns it
            return await service.searches.search(query, None, params)

        alone = [await search(i) for i in range(len(rows))]
        before = await served.search_calls()
        together = await asyncio.gather(*(search(i) for i in range(len(rows))))
        assert await served.search_calls() - before == 2  # one batch per model
        for got, expected in zip(together, alone, strict=True):
            assert hit_ids(got) == hit_ids(expected)

    run_served(api_data, test)


def test_the_service_warms_the_text_encoder_before_serving(api_data: ApiData) -> None:
    async def test(served: Served) -> None:
        embedder = await served.service.models.embedder()
        assert embedder.embed_texts(["a dog"]).shape == (1, 32)
        assert served.service.models.warmed_texts == 16

    run_served(api_data, test)
