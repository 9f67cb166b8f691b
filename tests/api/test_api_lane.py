"""The CPU lane: heavy steps take turns (searches first), and the text batcher collects the
next batch from the clients a search just answered; through the app on a real Milvus Lite,
model calls and store searches never overlap."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np
import pytest
from pydantic import ValidationError

from retrieval.api import create_app
from retrieval.api.batching import TextBatcher
from retrieval.api.lane import CpuLane, Step, searches_share_lane, shares_cpu
from retrieval.api.service import Service
from retrieval.config import Settings
from tests.api.helpers import ApiData


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout=60.0))  # a regression fails, never hangs


# ----- CpuLane ------------------------------------------------------------------------------


def test_steps_take_turns_and_waiting_searches_go_first() -> None:
    order: list[str] = []
    idle: list[Step] = []

    async def step(lane: CpuLane, kind: Step, name: str, gate: asyncio.Event | None = None) -> None:
        async with lane.hold(kind):
            order.append(f"+{name}")
            if gate is not None:
                await gate.wait()
            await asyncio.sleep(0)
            order.append(f"-{name}")

    async def main() -> None:
        lane = CpuLane()
        lane.add_idle_listener(idle.append)
        gate = asyncio.Event()
        first = asyncio.ensure_future(step(lane, Step.MODEL, "m1", gate))
        await asyncio.sleep(0.01)
        assert lane.busy
        rest = [
            asyncio.ensure_future(step(lane, kind, name))
            for kind, name in [
                (Step.MODEL, "m2"),
                (Step.SEARCH, "s1"),
                (Step.MODEL, "m3"),
                (Step.SEARCH, "s2"),
            ]
        ]
        await asyncio.sleep(0.01)
        assert order == ["+m1"]
        gate.set()
        await asyncio.gather(first, *rest)
        assert not lane.busy and lane.steps == 5

    run(main())
    assert order == ["+m1", "-m1", "+s1", "-s1", "+s2", "-s2", "+m2", "-m2", "+m3", "-m3"]
    assert idle == [Step.MODEL]  # idle once, after the last step; never between steps


def test_a_waiter_that_gives_up_never_blocks_the_lane() -> None:
    async def main() -> None:
        lane = CpuLane()
        gate = asyncio.Event()

        async def hold(kind: Step, wait: asyncio.Event | None = None) -> str:
            async with lane.hold(kind):
                if wait is not None:
                    await wait.wait()
                return kind.name

        async def line_up(gate: asyncio.Event) -> list[asyncio.Future[str]]:
            """A model step holding the lane until ``gate``; a search and a model step waiting."""
            holder = asyncio.ensure_future(hold(Step.MODEL, gate))
            await asyncio.sleep(0.01)
            waiting = [asyncio.ensure_future(hold(kind)) for kind in (Step.SEARCH, Step.MODEL)]
            await asyncio.sleep(0.01)
            return [holder, *waiting]

        holder, leaving, staying = await line_up(gate)
        leaving.cancel()
        gate.set()
        assert await staying == "MODEL" and await holder == "MODEL"
        assert leaving.cancelled() and not lane.busy
        # granted and cancelled in the same loop turn: the lane passes on, it is not lost
        gate = asyncio.Event()
        holder, granted_then_cancelled, after = await line_up(gate)
        gate.set()
        await asyncio.sleep(0)  # the holder releases: the search is granted ...
        granted_then_cancelled.cancel()  # ... and gives up before it runs
        assert await after == "MODEL" and await holder == "MODEL"
        assert not lane.busy

    run(main())


@pytest.mark.parametrize(
    ("uri", "local"),
    [
        ("./mmrag.db", True),
        ("/data/photos.db", True),
        ("http://127.0.0.1:19530", True),
        ("http://localhost:19530", True),
        ("https://[::1]:19530", True),
        ("unix:/tmp/milvus.sock", True),
        ("http://milvus:19530", False),
        ("https://in01-abc.cloud.example.com:443", False),
        ("http://10.0.0.5:19530", False),
    ],
)
def test_which_stores_share_this_machines_cores(uri: str, local: bool) -> None:
    assert shares_cpu(uri) is local
    assert searches_share_lane("auto", uri) is local
    assert searches_share_lane("shared", uri) is True
    assert searches_share_lane("separate", uri) is False


def test_the_lane_setting_is_validated() -> None:
    assert Settings(search_lane="separate").search_lane == "separate"
    with pytest.raises(ValidationError, match="'auto', 'shared' or 'separate'"):
        Settings(search_lane="sometimes")  # type: ignore[arg-type]


# ----- TextBatcher in a shared lane ----------------------------------------------------------


class Model:
    """Records each batch; optionally slow; one deterministic unit vector per text."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.calls: list[list[str]] = []
        self.delay_s = delay_s

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(list(texts))
        time.sleep(self.delay_s)
        out = np.ones((len(texts), 4), dtype=np.float32)
        return out / 2.0


def test_texts_wait_while_a_search_holds_the_lane_then_go_together() -> None:
    model = Model()

    async def main() -> None:
        lane = CpuLane()
        with ThreadPoolExecutor(1) as pool:
            batcher = TextBatcher(model, pool, window_s=0.2, lane=lane)
            gate = asyncio.Event()

            async def search() -> None:
                async with lane.hold(Step.SEARCH):
                    await gate.wait()

            holder = asyncio.ensure_future(search())
            await asyncio.sleep(0.01)
            first = asyncio.ensure_future(batcher.embed("a dog"))  # a lone client, but busy
            await asyncio.sleep(0.05)
            assert model.calls == []
            second = asyncio.ensure_future(batcher.embed("a cat"))
            await asyncio.sleep(0.01)
            gate.set()
            await asyncio.gather(holder, first, second)
            await batcher.close()

    run(main())
    assert model.calls == [["a dog", "a cat"]]


def test_clients_answered_by_a_search_join_the_next_batch() -> None:
    model = Model()

    async def main() -> None:
        lane = CpuLane()
        with ThreadPoolExecutor(1) as pool:
            batcher = TextBatcher(model, pool, window_s=0.01, company_s=1.0, lane=lane)
            await asyncio.gather(*(batcher.embed(f"q{i}") for i in range(3)))  # 3 clients
            async with lane.hold(Step.SEARCH):  # their search; one more text came meanwhile
                late = asyncio.ensure_future(batcher.embed("late"))
                await asyncio.sleep(0.01)
            # the search answered 3 clients: the batch waits for them (well past window_s)
            back = [asyncio.ensure_future(batcher.embed(f"r{i}")) for i in range(2)]
            await asyncio.sleep(0.1)
            assert len(model.calls) == 1
            started = time.perf_counter()
            await asyncio.gather(late, *back, batcher.embed("r2"))  # the last one is back
            assert time.perf_counter() - started < 0.8  # it went at once, not after company_s
            # one client leaves: the others go when company_s has passed since the first came
            async with lane.hold(Step.SEARCH):
                pass
            started = time.perf_counter()
            await asyncio.gather(*(batcher.embed(f"s{i}") for i in range(3)))
            assert time.perf_counter() - started >= 0.9
            # nobody came back within company_s: a later client waits window_s, not company_s
            async with lane.hold(Step.SEARCH):
                pass
            await asyncio.sleep(1.1)
            started = time.perf_counter()
            await batcher.embed("much later")
            assert time.perf_counter() - started < 0.8
            await batcher.close()

    run(main())
    assert model.calls[1:] == [["late", "r0", "r1", "r2"], ["s0", "s1", "s2"], ["much later"]]


def test_after_a_model_call_a_straggler_waits_for_company_but_a_full_group_goes_at_once() -> None:
    model = Model(delay_s=0.2)

    async def main() -> None:
        lane = CpuLane()
        with ThreadPoolExecutor(1) as pool:
            batcher = TextBatcher(model, pool, window_s=0.3, lane=lane)
            running = [asyncio.ensure_future(batcher.embed(f"a{i}")) for i in range(3)]
            await asyncio.sleep(0.02)  # no company yet: a0..a2 went at once, the model runs
            straggler = asyncio.ensure_future(batcher.embed("late"))  # 1 waits, 3 ran
            await asyncio.gather(*running)
            await asyncio.sleep(0.05)  # within the window: the straggler still waits
            assert len(model.calls) == 1
            joined = asyncio.ensure_future(batcher.embed("joined"))
            await asyncio.gather(straggler, joined)
            # a group as big as the latest batch waits for nobody when the model frees up
            slow = [asyncio.ensure_future(batcher.embed(f"b{i}")) for i in range(2)]
            await asyncio.sleep(0.35)
            group = [asyncio.ensure_future(batcher.embed(f"c{i}")) for i in range(2)]
            await asyncio.gather(*slow)
            await asyncio.sleep(0.05)
            alone = asyncio.ensure_future(batcher.embed("after"))
            await asyncio.gather(*group, alone)
            await batcher.close()

    run(main())
    assert model.calls == [
        ["a0", "a1", "a2"],
        ["late", "joined"],
        ["b0", "b1"],
        ["c0", "c1"],
        ["after"],
    ]


# ----- through the app -----------------------------------------------------------------------


class Intervals:
    """Wall-clock intervals of calls on other threads, to check that none overlap."""

    def __init__(self) -> None:
        self.spans: list[tuple[float, float, str]] = []
        self._lock = threading.Lock()

    def wrap(self, fn: Any, name: str) -> Any:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                with self._lock:
                    self.spans.append((started, time.perf_counter(), name))

        return timed

    def overlaps(self) -> list[tuple[str, str]]:
        spans = sorted(self.spans)
        return [(a[2], b[2]) for a, b in itertools.pairwise(spans) if b[0] < a[1]]


def test_model_calls_and_lite_searches_never_overlap(api_data: ApiData) -> None:
    intervals = Intervals()
    bodies = [{"query": f"a photo number {i}", "k": 3} for i in range(24)]

    async def main() -> None:
        app = create_app(api_data.settings_with(batch_window_ms=5.0))
        async with app.router.lifespan_context(app):
            service: Service = app.state.service
            assert service.stores.search_lane is service.lane  # a Lite file shares these cores
            embedder = await service.models.embedder()
            embedder.embed_texts = intervals.wrap(embedder.embed_texts, "model")  # type: ignore[method-assign]
            store = service.components.store
            store.search = intervals.wrap(store.search, "search")  # type: ignore[method-assign]
            # text queries on a collection with the text index run hybrid by default
            store.hybrid_search = intervals.wrap(  # type: ignore[method-assign]
                store.hybrid_search, "search")
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:

                async def client(chunk: list[dict]) -> None:
                    for body in chunk:
                        response = await http.post("/search", json=body)
                        assert response.status_code == 200, response.text
                        assert len(response.json()["hits"]) == 3

                await asyncio.gather(*(client(bodies[i::6]) for i in range(6)))

    run(main())
    names = [name for _, _, name in intervals.spans]
    assert names.count("model") >= 1 and names.count("search") >= 1
    assert names.count("model") < len(bodies)  # concurrent texts still share model calls
    assert intervals.overlaps() == []
