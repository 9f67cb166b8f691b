"""One CPU lane for the API's heavy steps: model calls, and store searches when the store
runs on the same machine. Steps run one at a time, waiting searches before model calls."""

from __future__ import annotations

import asyncio
import heapq
import ipaddress
import itertools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from enum import IntEnum
from urllib.parse import urlsplit

from retrieval.stores import is_local_uri


class Step(IntEnum):
    """What holds the lane; lower values go first among waiters."""

    SEARCH = 0  # its queries are already embedded: finishing them frees their clients
    MODEL = 1


IdleListener = Callable[[Step], None]


class CpuLane:
    """Grants the lane to one step at a time on one event loop; tells listeners when it idles.

    The query model and a store on the same cores (Milvus Lite, a server on loopback) slow each
    other down when they run at once: torch's threads wait on a core the store holds. Through
    the lane they take turns instead, and a text batcher listening for idle can collect the
    next batch from the clients a search just answered (see ``TextBatcher``).
    """

    def __init__(self) -> None:
        self._held = False
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._listeners: list[IdleListener] = []
        self.steps = 0

    @property
    def busy(self) -> bool:
        """Whether a step holds the lane (steps only wait while one does: release passes it on)."""
        return self._held

    def add_idle_listener(self, listener: IdleListener) -> None:
        """Call ``listener(step)`` whenever the lane goes idle after ``step``."""
        self._listeners.append(listener)

    def remove_idle_listener(self, listener: IdleListener) -> None:
        """Stop calling ``listener``."""
        if listener in self._listeners:
            self._listeners.remove(listener)

    @asynccontextmanager
    async def hold(self, step: Step) -> AsyncIterator[None]:
        """Hold the lane for one step (waiting for earlier and higher-priority steps)."""
        await self._acquire(step)
        try:
            yield
        finally:
            self._release(step)

    async def _acquire(self, step: Step) -> None:
        if not self.busy:
            self._held = True
            self.steps += 1
            return
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (int(step), next(self._order), granted))
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self._release(step)  # granted just before the cancel: pass the lane on
            else:
                granted.cancel()  # skipped when its turn comes
            raise
        self.steps += 1

    def _release(self, step: Step) -> None:
        while self._waiting:
            _, _, granted = heapq.heappop(self._waiting)
            if not granted.done():
                granted.set_result(None)  # the lane stays held: it passes to this waiter
                return
        self._held = False
        for listener in list(self._listeners):
            listener(step)


def shares_cpu(uri: str) -> bool:
    """Whether the store named by ``uri`` searches on this machine's cores (Lite, loopback)."""
    if is_local_uri(uri) or uri.strip().lower().startswith("unix:"):
        return True
    host = (urlsplit(uri.strip()).hostname or "").lower()
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # a host name: assume another machine
    return address.is_loopback or address.is_unspecified


def searches_share_lane(mode: str, uri: str) -> bool:
    """Whether store searches take turns with model calls (``MMRAG_SEARCH_LANE``: shared,
    separate, or auto: shared when the store runs on this machine)."""
    if mode in ("shared", "separate"):
        return mode == "shared"
    return shares_cpu(uri)
