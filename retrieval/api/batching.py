"""Micro-batching of text queries into one model call, with an LRU cache of embeddings."""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Executor

import numpy as np

EmbedFn = Callable[[Sequence[str]], np.ndarray]


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
    """Collects concurrent text queries for a short window, then embeds them in one call.

    Runs on one event loop. A batch closes after ``window_s`` or when it holds ``max_batch``
    distinct texts; the model call runs on ``executor`` (one model thread), never on the loop.
    Identical texts waiting at the same time share one slot, and results go to the LRU cache.
    """

    def __init__(
        self,
        embed: EmbedFn,
        executor: Executor,
        *,
        window_s: float = 0.005,
        max_batch: int = 16,
        cache: LruCache | None = None,
        on_lookup: Callable[[bool], None] | None = None,
    ) -> None:
        self._embed = embed
        self._executor = executor
        self.window_s = max(0.0, window_s)
        self.max_batch = max(1, max_batch)
        self.cache = cache if cache is not None else LruCache(0)
        self._on_lookup = on_lookup
        self._pending: dict[str, asyncio.Future[np.ndarray]] = {}
        self._running: dict[str, asyncio.Future[np.ndarray]] = {}  # texts in a model call now
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
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
            if len(self._pending) >= self.max_batch:
                self._flush()
            elif self._timer is None:
                loop = asyncio.get_running_loop()
                self._timer = loop.call_later(self.window_s, self._flush)
        return await asyncio.shield(future)  # one waiter giving up must not cancel the others

    def _flush(self) -> None:
        """Close the current batch and start its model call."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._pending:
            return
        batch, self._pending = self._pending, {}
        self._running.update(batch)
        task = asyncio.get_running_loop().create_task(self._run(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: dict[str, asyncio.Future[np.ndarray]]) -> None:
        """Embed one batch off the loop and resolve its futures."""
        try:
            await self._embed_batch(batch)
        finally:
            for text, future in batch.items():
                if self._running.get(text) is future:
                    del self._running[text]

    async def _embed_batch(self, batch: dict[str, asyncio.Future[np.ndarray]]) -> None:
        texts = list(batch)
        self.batches += 1
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
        """Flush what is waiting and wait for running batches."""
        self._flush()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
