"""map/flat_map with ``batch_size`` and/or ``workers``: ordered, bounded, batched execution.

Incoming messages become *entries* in one ordered deque. Entries holding items (rows, or heads
for once-per-frame nodes) are grouped into jobs: a batch of ``batch_size`` items (one operator
call with one list per input column), or, without batching, a slice of a row chunk. Jobs run
inline or on a :class:`WorkerPool`; entries leave the deque strictly in order once their job is
done, so output order equals input order whatever the workers do.
"""

from __future__ import annotations

import concurrent.futures
import functools
import queue
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from types import GeneratorType
from typing import Any

from pipelines.channel import END, MAX_MESSAGES, Channel, Head, Message, Row, RunControl
from pipelines.errors import Cancelled
from pipelines.nodes import Stage, assign, from_generator, item_args, pass_through

POLL_S = 0.1
Job = Callable[[], Any]


class WorkerPool:
    """N daemon threads running jobs; each finished job kicks the owning stage's input channel."""

    def __init__(self, size: int, name: str, ctl: RunControl, notify: Channel) -> None:
        self._ctl = ctl
        self._notify = notify
        self._tasks: queue.SimpleQueue[tuple[Future[Any], Job] | None] = queue.SimpleQueue()
        self.threads = [
            threading.Thread(target=self._work, name=f"{name}-w{i}", daemon=True)
            for i in range(size)
        ]
        for thread in self.threads:
            thread.start()

    def submit(self, job: Job) -> Future[Any]:
        """Queue a job; its result (or exception) lands in the returned future."""
        future: Future[Any] = Future()
        self._tasks.put((future, job))
        return future

    def shutdown(self) -> None:
        """Let every worker exit once the queued jobs are done (or skipped, if cancelled)."""
        for _ in self.threads:
            self._tasks.put(None)

    def _work(self) -> None:
        while True:
            task = self._tasks.get()
            if task is None:
                return
            future, job = task
            if self._ctl.cancelled or not future.set_running_or_notify_cancel():
                future.cancel()
                continue
            try:
                result = job()
            except BaseException as exc:  # noqa: BLE001 - handed to the stage thread, re-raised there
                future.set_exception(exc)
            else:
                future.set_result(result)
            self._notify.kick()


@dataclass(slots=True)
class _Entry:
    """One message waiting to be emitted, with the items its job computes."""

    msg: Message
    head: Head | None = None
    items: list[Any] = field(default_factory=list)
    fut: Future[Any] | None = None
    queued: bool = False
    results: list[Any] | None = None


class PooledStage(Stage):
    """A map or flat_map node configured with ``batch_size`` and/or ``workers``."""

    def setup(self) -> None:
        config = self.plan.spec.config
        self.flat = self.plan.spec.kind == "flat_map"
        self.per_head = self.plan.level == "head"
        self.batch = config.batch_size
        self.workers = config.workers
        self.pool: WorkerPool | None = None
        if self.workers > 1:
            self.pool = WorkerPool(self.workers, self.name, self.ctl, self.inq)
            self.threads.extend(self.pool.threads)
        self.pending: deque[_Entry] = deque()
        self.queued: list[_Entry] = []
        self.queued_items = 0
        self.jobs: deque[Future[Any]] = deque()
        self.max_inflight = 2 * self.workers
        self.hold_limit = 4 * (self.batch or 1) + MAX_MESSAGES

    def cleanup(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()

    def loop(self) -> None:
        inq = self.inq
        while True:
            kicks = inq.kicks
            self.emit_ready()
            self.out.flush()
            inflight = self.retire()
            if inflight >= self.max_inflight:
                self.wait(self.jobs[0])
                continue
            msgs = inq.get(kicks=kicks if inflight else None)
            if msgs is None:
                break
            for msg in self.gate(msgs):
                self.accept(msg)
            if self.queued and len(self.pending) > self.hold_limit:
                self.submit()
        self.submit()
        while self.pending:
            self.emit_ready()
            if self.pending and self.pending[0].fut is not None:
                self.wait(self.pending[0].fut)
        self.out.flush()
        self.outq.close()

    def accept(self, msg: Message) -> None:
        """Turn one message into entries, queueing or submitting the items it carries."""
        if type(msg) is list:
            if self.per_head:
                self.passthrough(msg)
            elif self.batch:
                self.accept_batched_rows(msg)
            else:
                size = -(-len(msg) // self.workers)
                for start in range(0, len(msg), size):
                    piece = msg[start : start + size] if size < len(msg) else msg
                    self.add_item_entry(piece, piece)
                    self.submit()
        elif msg is END:
            self.passthrough(msg)
        else:
            self.head = msg
            if self.per_head:
                self.add_item_entry(msg, [msg])
                if not self.batch or self.queued_items >= self.batch:
                    self.submit()
            else:
                self.passthrough(msg)

    def accept_batched_rows(self, rows: list[Row]) -> None:
        """Split a row chunk at batch boundaries so every entry belongs to exactly one job."""
        assert self.batch is not None
        start = 0
        while start < len(rows):
            take = self.batch - self.queued_items
            piece = rows[start : start + take] if start or take < len(rows) else rows
            start += len(piece)
            self.add_item_entry(piece, piece)
            if self.queued_items >= self.batch:
                self.submit()

    def passthrough(self, msg: Message) -> None:
        """A message with nothing to compute: emit now, or queue behind pending entries."""
        if self.pending:
            self.pending.append(_Entry(msg))
        else:
            pass_through(msg, self.out)

    def add_item_entry(self, msg: Message, items: list[Any]) -> None:
        """Queue an entry whose items go into the next job."""
        entry = _Entry(msg, head=self.head, items=items, queued=True)
        self.pending.append(entry)
        self.queued.append(entry)
        self.queued_items += len(items)

    def submit(self) -> None:
        """Start a job on the queued entries: on the pool, or inline without workers."""
        if not self.queued:
            return
        entries, self.queued, self.queued_items = self.queued, [], 0
        job = functools.partial(self.compute, entries)
        if self.pool is None:
            job()
            for entry in entries:
                entry.queued = False
            return
        future = self.pool.submit(job)
        self.jobs.append(future)
        for entry in entries:
            entry.fut = future
            entry.queued = False

    def compute(self, entries: list[_Entry]) -> None:
        """Run the operator on every item of ``entries`` (as one batch, or item by item)."""
        ins = self.plan.ins
        args_list = [
            item_args(ins, entry.head, None if self.per_head else item)  # type: ignore[arg-type]
            for entry in entries
            for item in entry.items
        ]
        values = self.call_batch(args_list) if self.batch else self.call_each(args_list)
        k = 0
        for entry in entries:
            chunk = values[k : k + len(entry.items)]
            k += len(entry.items)
            if self.flat:
                entry.results = chunk
                continue
            for item, value in zip(entry.items, chunk, strict=True):
                assign(item.vals if self.per_head else item, self.outs, value)

    def call_each(self, args_list: list[tuple[Any, ...]]) -> list[Any]:
        """One call per item (map generators become lists, as in towhee)."""
        fn, n_out, values = self.fn, len(self.outs), []
        for args in args_list:
            try:
                value = fn(*args)
            except Exception as exc:  # wrapped with context, re-raised on the consumer side
                raise self.error(exc, args) from exc
            if not self.flat and type(value) is GeneratorType:
                value = from_generator(value, n_out)
            values.append(value)
        return values

    def call_batch(self, args_list: list[tuple[Any, ...]]) -> list[Any]:
        """One call for the whole batch: one list per input column in, one result per item out."""
        n, n_out = len(args_list), len(self.outs)
        cols = tuple([args[k] for args in args_list] for k in range(len(self.plan.ins)))
        try:
            result = self.fn(*cols)
            if self.flat or n_out == 1:
                values = list(result)
            elif n_out == 0:
                values = [None] * n
            else:
                columns = [list(col) for col in result]
                if len(columns) != n_out or any(len(col) != n for col in columns):
                    raise ValueError(
                        f"batched operator must return {n_out} lists of {n} results, got "
                        f"{len(columns)} lists of lengths {[len(col) for col in columns]}"
                    )
                values = list(zip(*columns, strict=True))
            if len(values) != n:
                raise ValueError(f"batched operator returned {len(values)} results for {n} rows")
        except Exception as exc:  # wrapped with context, re-raised on the consumer side
            raise self.error(exc, cols, batch=True) from exc
        return values

    def emit_ready(self) -> None:
        """Emit entries from the front while their jobs are done (re-raising job failures)."""
        pending = self.pending
        while pending:
            entry = pending[0]
            if entry.queued:
                return
            if entry.fut is not None:
                if not entry.fut.done():
                    return
                entry.fut.result()
            pending.popleft()
            self.emit(entry)

    def emit(self, entry: _Entry) -> None:
        """Forward an entry; a flat_map entry is replaced by its expanded rows."""
        if not self.flat or entry.results is None:
            pass_through(entry.msg, self.out)
        elif self.per_head:
            self.out.head(entry.msg)
            self.expand(entry.results[0], None, ())
        else:
            for row, items in zip(entry.items, entry.results, strict=True):
                self.expand(items, row, ())

    def retire(self) -> int:
        """Drop finished jobs from the front of the in-flight list; return how many remain."""
        jobs = self.jobs
        while jobs and jobs[0].done():
            jobs.popleft()
        return len(jobs)

    def wait(self, future: Future[Any]) -> None:
        """Block until ``future`` is done, noticing cancellation."""
        while not future.done():
            if self.ctl.cancelled:
                raise Cancelled
            concurrent.futures.wait([future], timeout=POLL_S)
