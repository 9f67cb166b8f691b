"""The decoded-pixel budget: requests hold what their decode needs, wait in order, get 503 with
Retry-After when it does not free up, and big opaque PNGs are reduced while decoding."""

from __future__ import annotations

import asyncio

import cv2
import numpy as np
import pytest

from retrieval.api.errors import ApiError
from retrieval.api.pixel_budget import PixelBudget, decode_cost, header_facts
from retrieval.imaging import decode_image

MB = 2**20


def _png(height: int, width: int, channels: int = 3, depth: type = np.uint8) -> bytes:
    rng = np.random.default_rng(height * 7 + width)
    top = np.iinfo(depth).max
    image = rng.integers(0, top, (height, width, channels), dtype=depth)
    ok, encoded = cv2.imencode(".png", image)
    assert ok
    return encoded.tobytes()


def test_requests_that_fit_hold_at_once_and_give_back() -> None:
    async def run() -> None:
        budget = PixelBudget(100, wait_s=0)
        first = await budget.hold(60)
        second = await budget.hold(40)
        assert budget.used == 100
        first.shrink(10)
        assert budget.used == 50
        first.release()
        first.release()  # idempotent
        second.release()
        assert budget.used == 0

    asyncio.run(run())


def test_a_request_that_does_not_fit_in_time_is_503_with_retry_after() -> None:
    async def run() -> None:
        budget = PixelBudget(100, wait_s=0)
        held = await budget.hold(80)
        with pytest.raises(ApiError) as caught:
            await budget.hold(30)
        assert caught.value.status == 503 and caught.value.type == "busy"
        assert caught.value.headers is not None and caught.value.headers["Retry-After"] == "2"
        assert "retry" in caught.value.message and budget.waiting == 0
        held.release()
        assert budget.used == 0

    asyncio.run(run())


def test_waiters_are_served_in_order_and_a_big_one_runs_alone() -> None:
    async def run() -> list[str]:
        budget = PixelBudget(100, wait_s=60)
        order: list[str] = []
        first = await budget.hold(70)

        async def request(name: str, cost: int) -> None:
            async with await budget.hold(cost) as lease:
                order.append(name)
                assert budget.used <= budget.capacity and lease.held == min(cost, 100)
                await asyncio.sleep(0)

        tasks = [asyncio.create_task(request("big", 500)),  # more than all: runs alone
                 asyncio.create_task(request("small", 10))]
        await asyncio.sleep(0)
        assert budget.waiting == 2 and order == []  # small waits behind big (no overtaking)
        first.release()
        await asyncio.gather(*tasks)
        assert budget.used == 0
        return order

    assert asyncio.run(run()) == ["big", "small"]


def test_a_waiter_that_goes_away_leaves_the_queue() -> None:
    async def run() -> None:
        budget = PixelBudget(100, wait_s=60)
        held = await budget.hold(100)
        waiting = asyncio.create_task(budget.hold(50))
        await asyncio.sleep(0)
        assert budget.waiting == 1
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert budget.waiting == 0
        held.release()
        assert budget.used == 0
        (await budget.hold(100)).release()

    asyncio.run(run())


def test_decode_cost_follows_the_decode_path() -> None:
    opaque = _png(1200, 1000)
    assert header_facts(opaque) is not None
    full = decode_cost(opaque, None)  # nothing to reduce to: the full decode
    reduced = decode_cost(opaque, 100)
    assert full > 1200 * 1000 * 6 > 1200 * 1000 * 3 < reduced < full
    alpha = decode_cost(_png(1200, 1000, channels=4), 100)
    assert alpha > full  # composited over white in 16-bit temporaries
    wide = decode_cost(_png(1200, 1000, depth=np.uint16), None)
    assert wide > full
    assert decode_cost(b"not an image", 100) == len(b"not an image")


def test_big_opaque_pngs_are_reduced_while_decoding() -> None:
    data = _png(1600, 1200)
    full = decode_image(data)
    reduced = decode_image(data, min_side=150, reduce=True)
    assert full.shape == (1600, 1200, 3)
    assert reduced.shape == (200, 150, 3) and reduced.dtype == np.uint8  # 1/8: 1200 // 8 = 150
    area = cv2.resize(full, (150, 200), interpolation=cv2.INTER_AREA)
    assert np.abs(reduced.astype(int) - area.astype(int)).mean() < 1.0  # a box filter, not a pick
    assert decode_image(data, min_side=150).shape == full.shape  # the ingest path: unchanged
    half = decode_image(data, min_side=600, reduce=True)
    assert half.shape == (800, 600, 3)
    transparent = _png(800, 800, channels=4)
    assert decode_image(transparent, min_side=100, reduce=True).shape == (800, 800, 3)
