"""Micro-batching: text queries into one model call (with an LRU cache of embeddings), and
vector searches with the same parameters into one store call; warming the text-encode shapes."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np

from retrieval.api.lane import CpuLane, Step
from retrieval.embedders.base import Embedder
from retrieval.errors import MmragError, StoreError
from retrieval.types import Hit

log = logging.getLogger(__name__)

EmbedFn = Callable[[Sequence[str]], np.ndarray]
K = TypeVar("K", bound=Hashable)
SearchFn = Callable[[K, np.ndarray], Awaitable[Sequence[list[Hit]]]]

WARM_WORDS = 16  # batch-1 text encodes of 1..16 words, one per trimmed token length
WARM_BUDGET_S = 2.0  # stop warming once this much time went by (large models, slow CPUs)
WARM_WORD = "photo"  # one token in CLIP's BPE vocabulary
COMPANY_WINDOWS = 5  # after a search, wait up to this many batching windows for its clients


class LruCache:
    """A bounded, thread-safe mapping of query text to a read-only embedding."""

    def __init__(self, size: int) -> None:
        self.size = max(0, size)
        self._items: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> np.ndarray | None:
        """The cached vector (marked most recent), or None."""
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: str, value: np.ndarray) -> None:
        """Store a copy of the vector, evicting the least recently used beyond the size."""
        if self.size == 0:
            return
        frozen = np.array(value, dtype=np.float32, copy=True)
        frozen.flags.writeable = False
        with self._lock:
            self._items[key] = frozen
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


class TextBatcher:
    """Collects concurrent text queries while the lane is busy, then embeds them in one call.

    Runs on one event loop. Model calls hold ``lane`` (shared with the store's searches when
    they use the same cores, see ``CpuLane``); while it is busy, new texts collect. When it is
    idle, a text goes on the next loop turn if the latest batch held one text (a lone client
    waits for nothing), else after ``window_s`` (concurrent clients: their next queries arrive
    within a few ms of each other). When the lane goes idle after a model call, the texts that
    waited go at once, or after ``window_s`` if fewer wait than the latest batch held. When it
    goes idle after a search, the clients it answered send their next queries: the batch waits
    until they are all back (as many as the latest batch held, plus the texts already waiting)
    or ``company_s`` has passed since the search ended. So concurrent clients settle into one
    full batch instead of a big one and stragglers. A batch closes at ``max_batch`` texts. The
    model call runs on ``executor`` (one model thread), never on the loop. Identical texts
    waiting at the same time share one slot, and results go to the LRU cache.
    """

    def __init__(
        self,
        embed: EmbedFn,
        executor: Executor,
        *,
        window_s: float = 0.0,
        company_s: float | None = None,
        max_batch: int = 16,
        cache: LruCache | None = None,
        on_lookup: Callable[[bool], None] | None = None,
        lane: CpuLane | None = None,
    ) -> None:
        self._embed = embed
        self._executor = executor
        self.window_s = max(0.0, window_s)
        self.company_s = max(0.0, COMPANY_WINDOWS * self.window_s if company_s is None
                             else company_s)
        self.max_batch = max(1, max_batch)
        self.cache = cache if cache is not None else LruCache(0)
        self._on_lookup = on_lookup
        self._pending: dict[str, asyncio.Future[np.ndarray]] = {}
        self._running: dict[str, asyncio.Future[np.ndarray]] = {}  # texts in a model call now
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_size = 0  # texts in the latest batch: >1 means concurrent clients
        self._expected = 0  # after a search: texts the next batch waits for (0: none) ...
        self._expected_until = 0.0  # ... until this loop time
        self._lane = lane if lane is not None else CpuLane()
        self._lane.add_idle_listener(self._on_idle)
        self.batches = 0

    async def embed(self, text: str) -> np.ndarray:
        """The unit vector of one text (cached, or computed in the next batch)."""
        cached = self.cache.get(text)
        if self._on_lookup is not None:
            self._on_lookup(cached is not None)
        if cached is not None:
            return cached
        future = self._pending.get(text) or self._running.get(text)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._pending[text] = future
            if self._complete():
                self._flush()
            elif self._timer is None and not self._lane.busy:  # busy: the lane's idle flushes
                self._schedule(self._wait_s())
        return await asyncio.shield(future)  # one waiter giving up must not cancel the others

    def _expecting(self) -> int:
        """Texts still expected from the clients the latest search answered (0: none)."""
        if self._expected and asyncio.get_running_loop().time() < self._expected_until:
            return self._expected
        return 0

    def _complete(self) -> bool:
        """At ``max_batch``, or (lane idle, after a search) every expected client is back."""
        size = len(self._pending)
        if size >= self.max_batch:
            return True
        return 0 < self._expecting() <= size and not self._lane.busy

    def _wait_s(self) -> float:
        """How long an open batch waits for company."""
        if self._last_size <= 1:
            return 0.0  # a lone client waits for nothing
        if self._expecting():
            return max(0.0, self._expected_until - asyncio.get_running_loop().time())
        return self.window_s

    def _schedule(self, delay_s: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(delay_s, self._flush_if_idle)

    def _flush_if_idle(self) -> None:
        """The wait ended: close the batch, unless the lane got busy (its idle flushes)."""
        self._timer = None
        if not self._lane.busy:
            self._flush()

    def _on_idle(self, step: Step) -> None:
        """The lane went idle after ``step``: start what waited (see the class docstring)."""
        company = self._last_size > 1
        if step is Step.SEARCH and company:
            self._expected = min(self.max_batch, len(self._pending) + self._last_size)
            self._expected_until = asyncio.get_running_loop().time() + self.company_s
            if self._complete():
                self._schedule(0.0)
            elif self._pending:
                self._schedule(self.company_s)
            return  # else the first text back starts the wait
        if not self._pending or self._timer is not None:
            return
        straggler = company and len(self._pending) < self._last_size
        self._schedule(self.window_s if straggler else 0.0)

    def _flush(self) -> None:
        """Close the current batch and start its model call."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._pending:
            return
        self._expected = 0
        batch, self._pending = self._pending, {}
        self._running.update(batch)
        task = asyncio.get_running_loop().create_task(self._run(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: dict[str, asyncio.Future[np.ndarray]]) -> None:
        """Embed one batch off the loop, holding the lane, and resolve its futures."""
        try:
            async with self._lane.hold(Step.MODEL):
                await self._embed_batch(batch)
        finally:
            for text, future in batch.items():
                if self._running.get(text) is future:
                    del self._running[text]

    async def _embed_batch(self, batch: dict[str, asyncio.Future[np.ndarray]]) -> None:
        texts = list(batch)
        self.batches += 1
        self._last_size = len(texts)
        loop = asyncio.get_running_loop()
        try:
            vectors = await loop.run_in_executor(self._executor, self._embed, texts)
        except asyncio.CancelledError:
            for future in batch.values():
                future.cancel()
            raise
        except Exception as exc:  # noqa: BLE001 - not swallowed: every waiter re-raises it
            for future in batch.values():
                if not future.done():
                    future.set_exception(exc)
            return
        for text, vector in zip(texts, vectors, strict=True):
            self.cache.put(text, vector)
            cached = self.cache.get(text)  # the read-only copy, when caching is on
            future = batch[text]
            if not future.done():
                future.set_result(cached if cached is not None else vector)

    async def close(self) -> None:
        """Flush what is waiting, wait for running batches, stop listening to the lane."""
        self._flush()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._lane.remove_idle_listener(self._on_idle)


@dataclass
class _Batch:
    """Query vectors waiting for one store call, and their waiters' futures."""

    vectors: list[np.ndarray] = field(default_factory=list)
    futures: list[asyncio.Future[list[Hit]]] = field(default_factory=list)
    timer: asyncio.TimerHandle | None = None


class SearchBatcher(Generic[K]):
    """Collects concurrent vector searches that share a key, then runs them as one store call.

    Runs on one event loop. The key holds everything the store call depends on but the query
    vector (model, collection, k, offset, filter, ...); ``search(key, matrix)`` is awaited once
    per batch and returns one hit list per row. While no store call of this batcher runs, a
    batch closes on the next loop turn (it holds the searches started in the same turn, e.g.
    every query of one text batch), so a lone request waits for nothing; while one runs, a batch
    collects for up to ``window_s``, or until the running calls end; it also closes at
    ``max_batch`` vectors. Errors reach every waiter; a waiter that gives up cancels no other.
    """

    def __init__(
        self, search: SearchFn[K], *, window_s: float = 0.005, max_batch: int = 16
    ) -> None:
        self._search = search
        self.window_s = max(0.0, window_s)
        self.max_batch = max(1, max_batch)
        self._pending: dict[K, _Batch] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._running = 0  # store calls in progress
        self.batches = 0
        self.searches = 0

    async def search(self, key: K, vector: np.ndarray) -> list[Hit]:
        """The hits of one query vector (searched in the next batch of its key)."""
        loop = asyncio.get_running_loop()
        batch = self._pending.get(key)
        if batch is None:
            batch = self._pending[key] = _Batch()
            delay = self.window_s if self._running else 0.0
            batch.timer = loop.call_later(delay, self._flush, key, batch)
        future: asyncio.Future[list[Hit]] = loop.create_future()
        future.add_done_callback(_retrieve)
        batch.vectors.append(np.asarray(vector, dtype=np.float32))
        batch.futures.append(future)
        self.searches += 1
        if len(batch.futures) >= self.max_batch:
            self._flush(key, batch)
        return await future  # its own: a waiter giving up cancels no other, nor the call

    def _flush(self, key: K, batch: _Batch) -> None:
        """Close one key's batch (if still open) and start its store call."""
        if self._pending.get(key) is not batch:
            return
        del self._pending[key]
        if batch.timer is not None:
            batch.timer.cancel()
        task = asyncio.get_running_loop().create_task(self._run(key, batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _flush_all(self) -> None:
        """Close every waiting batch."""
        for key, batch in list(self._pending.items()):
            self._flush(key, batch)

    async def _run(self, key: K, batch: _Batch) -> None:
        """Search one batch; once no call runs any more, start what waited meanwhile."""
        if all(future.done() for future in batch.futures):
            return  # every waiter gave up before the batch closed
        self.batches += 1
        self._running += 1
        try:
            await self._search_batch(key, batch)
        finally:
            self._running -= 1
            if not self._running:
                self._flush_all()

    async def _search_batch(self, key: K, batch: _Batch) -> None:
        """One store call for a batch, resolving its futures."""
        try:
            results = await self._search(key, np.stack(batch.vectors))
            if len(results) != len(batch.futures):
                raise StoreError(
                    f"the store answered {len(results)} hit lists for {len(batch.futures)} queries"
                )
        except asyncio.CancelledError:
            for future in batch.futures:
                future.cancel()
            raise
        except Exception as exc:  # noqa: BLE001 - not swallowed: every waiter re-raises it
            for future in batch.futures:
                if not future.done():
                    future.set_exception(exc)
            return
        for future, hits in zip(batch.futures, results, strict=True):
            if not future.done():
                future.set_result(list(hits))

    async def close(self) -> None:
        """Flush every waiting batch and wait for running ones."""
        while self._pending or self._tasks:
            self._flush_all()
            await asyncio.gather(*self._tasks, return_exceptions=True)


def _retrieve(future: asyncio.Future[list[Hit]]) -> None:
    """Mark a batch future's exception as seen (its waiter may have given up before it came)."""
    if not future.cancelled():
        future.exception()


def warm_text_shapes(
    embedder: Embedder, words: int = WARM_WORDS, budget_s: float = WARM_BUDGET_S
) -> int:
    """Encode one text of each length 1..``words`` words at batch 1; returns how many ran.

    The first encode of a new token length pays for creating its kernels (oneDNN on CPU), so
    doing it before serving keeps that cost off the first queries. Best effort: stops once
    ``budget_s`` went by, and a failing encode is logged, not raised (it will fail queries too).
    """
    started = time.perf_counter()
    done = 0
    for count in range(1, words + 1):
        if time.perf_counter() - started >= budget_s:
            break
        try:
            embedder.embed_texts([" ".join([WARM_WORD] * count)])
        except MmragError as exc:
            log.warning("warming the text encoder of %s failed: %s", embedder.model_id, exc)
            break
        done += 1
    log.debug("warmed %d text shapes of %s in %.3f s", done, embedder.model_id,
              time.perf_counter() - started)
    return done
