"""What an ingest job's threads borrow from the server's event loop: CPU-lane turns, guarded
URL fetches and the query model.

The job runs on its own threads; the lane (``retrieval.api.lane``) and the SSRF-guarded fetch
(``retrieval.api.images.fetch_image``) live on the event loop. A ``LoopBridge`` runs their
coroutines there and waits for them from the job's thread, so a job's model call or write holds
the same lane as the server's searches and query embeddings, one step at a time.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Coroutine, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, TypeVar

from retrieval.api.errors import ApiError
from retrieval.api.images import fetch_image
from retrieval.api.lane import CpuLane, Step
from retrieval.errors import StoreUnavailableError
from retrieval.fetch import Fetcher, FetchError

T = TypeVar("T")


class LoopBridge:
    """Runs coroutines on the server's event loop from a job's threads."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the loop and wait for its result (from another thread)."""
        if self.loop.is_closed():
            coroutine.close()
            raise StoreUnavailableError("the server is shutting down; the ingest job stopped")
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    @contextmanager
    def holding(self, lane: CpuLane, step: Step) -> Iterator[None]:
        """Hold ``lane`` for one step while the calling thread works."""
        granted: concurrent.futures.Future[asyncio.Event] = concurrent.futures.Future()

        async def hold() -> None:
            release = asyncio.Event()
            async with lane.hold(step):
                granted.set_result(release)
                await release.wait()

        held = asyncio.run_coroutine_threadsafe(hold(), self.loop)
        release = granted.result()
        try:
            yield
        finally:
            self.loop.call_soon_threadsafe(release.set)
            held.result()


class LaneTurns:
    """The job's ``turn(step)`` hook: model calls always take the lane; writes take it when
    the store shares these cores (as searches do then)."""

    def __init__(self, bridge: LoopBridge, lane: CpuLane, writes_share: bool) -> None:
        self.bridge = bridge
        self.lane = lane
        self.writes_share = writes_share

    def __call__(self, step: str) -> AbstractContextManager[object]:
        if step == "model" or self.writes_share:
            return self.bridge.holding(self.lane, Step.MODEL)
        return nullcontext()


class GuardedFetcher(Fetcher):
    """The job's URL fetcher through the API's SSRF guard (public hosts only, each hop pinned
    to its checked address), with the upload size cap; a refusal is the item's reject."""

    def __init__(self, bridge: LoopBridge, max_bytes: int, allow_private: bool) -> None:
        super().__init__(connections=1)
        self.bridge = bridge
        self.max_bytes = max_bytes
        self.allow_private = allow_private

    def fetch(self, url: str) -> bytes:
        """The image bytes at ``url``, or FetchError with the guard's reason."""
        try:
            return self.bridge.run(
                fetch_image(url, max_bytes=self.max_bytes, allow_private=self.allow_private)
            )
        except ApiError as exc:
            raise FetchError(exc.message) from None
