"""One execution of a compiled plan: threads, the input feed and the lazy result queue.

Stage loops run on reusable daemon threads (:data:`RUNNERS`): starting a thread per stage per
call is slow. At interpreter exit every run still going is cancelled and its threads are
waited for (:func:`stop_live_runs`), so no operator is inside native code (torch, gRPC) while
the interpreter tears down: that aborted the process ("terminate called without an active
exception").
"""

from __future__ import annotations

import atexit
import functools
import itertools
import logging
import queue
import sys
import threading
import time
import warnings
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from operator import itemgetter
from typing import Any

from pipelines.channel import END, Channel, Emitter, Head, Message, Row, RunControl
from pipelines.errors import Cancelled, PipelineError
from pipelines.nodes import STAGES, Stage
from pipelines.plan import Plan, StagePlan
from pipelines.pooled import PooledStage
from pipelines.schema import DEFAULT_QUEUE_SIZE

_RUN_IDS = itertools.count()
THREAD_PREFIX = "mmrag-pipe"
IDLE_NAME = f"{THREAD_PREFIX}-idle"
IDLE_TIMEOUT_S = 30.0
ERROR_JOIN_TIMEOUT_S = 30.0  # after a failure, how long to wait for the other threads' calls
EXIT_JOIN_TIMEOUT_S = 60.0  # at interpreter exit, how long to wait for running operator calls

log = logging.getLogger(__name__)

Task = tuple[Callable[[], None], str, threading.Event]


class Runners:
    """An unbounded pool: a task runs on an idle thread, or a new one; idle threads time out."""

    def __init__(self, idle_timeout: float = IDLE_TIMEOUT_S) -> None:
        self._tasks: queue.SimpleQueue[Task] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0
        self._timeout = idle_timeout

    def start(self, fn: Callable[[], None], name: str) -> threading.Event:
        """Run ``fn`` on a thread named ``name``; the returned event is set when it returns."""
        done = threading.Event()
        with self._lock:
            self._tasks.put((fn, name, done))
            if self._idle:
                self._idle -= 1
                return done
        threading.Thread(target=self._loop, name=IDLE_NAME, daemon=True).start()
        return done

    def _loop(self) -> None:
        me = threading.current_thread()
        while True:
            try:
                fn, name, done = self._tasks.get(timeout=self._timeout)
            except queue.Empty:
                with self._lock:
                    if not self._tasks.empty():
                        continue
                    self._idle -= 1
                    return
            me.name = name
            try:
                fn()
            except BaseException:  # noqa: BLE001 - tasks report their own errors; keep the runner
                pass
            finally:
                me.name = IDLE_NAME
                done.set()
                with self._lock:
                    self._idle += 1


RUNNERS = Runners()


def head_values(plan: Plan, values: Any, single: bool) -> list[Any]:
    """Head slots for one input: ``values`` is a tuple of column values, or the value itself."""
    n = len(plan.inputs)
    if single and n == 1:
        vals = [values]
    else:
        if not isinstance(values, (tuple, list)) or len(values) != n:
            raise PipelineError(f"pipeline takes {n} input(s) {plan.inputs}, got {values!r:.200}")
        vals = list(values)
    vals.extend([None] * (plan.head_width - n))
    return vals


def _make_stage(
    stage: StagePlan, ctl: RunControl, inq: Channel, outq: Channel, row_width: int, name: str
) -> Stage:
    config = stage.spec.config
    if stage.spec.kind in ("map", "flat_map") and (config.batch_size or config.workers > 1):
        return PooledStage(stage, ctl, inq, outq, row_width, name)
    return STAGES[stage.spec.kind](stage, ctl, inq, outq, row_width, name)


class Run:
    """Threads and channels of one execution; cancelling it stops every thread.

    ``on_end`` is called once when a reader reaches the end of the run's output.
    """

    def __init__(self, plan: Plan, on_end: Callable[[], None] | None = None) -> None:
        self.plan = plan
        self.on_end = on_end
        self.ctl = RunControl()
        self.name = f"{THREAD_PREFIX}-{next(_RUN_IDS)}"
        sizes = [DEFAULT_QUEUE_SIZE] + [s.spec.config.queue_size for s in plan.stages]
        self.channels = [Channel(self.ctl, size) for size in sizes]
        self.threads: list[threading.Thread] = []
        self.done: list[threading.Event] = []
        for i, stage_plan in enumerate(plan.stages):
            name = f"{self.name}-{i}-{stage_plan.spec.kind}"
            stage = _make_stage(
                stage_plan, self.ctl, self.channels[i], self.channels[i + 1], plan.row_width, name
            )
            self.threads.extend(stage.threads)
            self.done.append(RUNNERS.start(stage.run, name))
        _LIVE_RUNS.add(self)

    def feed_one(self, values: list[Any]) -> None:
        """Input a single frame and close the input."""
        first = self.channels[0]
        first.put([Head(0, values), END], 1)
        first.close()

    def feed_iter(self, inputs: Iterable[Any]) -> None:
        """Input frames from an iterable on a feeder thread (lazily, with backpressure)."""
        feed = functools.partial(self._feed, iter(inputs))
        task = functools.partial(self.ctl.guard, feed, "input feeder")
        self.done.append(RUNNERS.start(task, f"{self.name}-feed"))

    def _feed(self, inputs: Iterator[Any]) -> None:
        first = self.channels[0]
        out = Emitter(first)
        fid = 0
        while True:
            try:
                item = next(inputs)
            except StopIteration:
                break
            except Exception as exc:  # the caller's iterator failed: wrapped for the consumer
                msg = f"input iterator raised {type(exc).__name__}: {exc}"
                raise PipelineError(msg) from exc
            out.head(Head(fid, head_values(self.plan, item, single=True)))
            out.end()
            fid += 1
            if first.hungry:
                out.flush()
        out.flush()
        first.close()

    def fetch(self) -> list[Message] | None:
        """Next messages for the consumer; ``None`` at the end; raises the run's error."""
        try:
            return self.channels[-1].get()
        except Cancelled:
            pass
        raise self.ctl.error or PipelineError("the pipeline run was closed")

    def cancel(self) -> None:
        """Stop all threads (they exit at their next channel operation)."""
        self.ctl.cancel()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for every stage, feeder and worker thread of the run; True if all have ended."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for event in self.done:
            event.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
        for thread in self.threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return all(e.is_set() for e in self.done) and not any(t.is_alive() for t in self.threads)


_LIVE_RUNS: weakref.WeakSet[Run] = weakref.WeakSet()


def stop_live_runs(timeout: float = EXIT_JOIN_TIMEOUT_S) -> bool:
    """Cancel every run still going and wait for its threads; True if they all ended."""
    runs = list(_LIVE_RUNS)
    for run in runs:
        run.cancel()
    deadline = time.monotonic() + timeout
    ended = all([run.join(max(0.0, deadline - time.monotonic())) for run in runs])
    if not ended:
        log.warning(
            "pipeline threads were still inside an operator call %.0f s after exit began",
            timeout,
        )
    return ended


atexit.register(stop_live_runs)


class OutputReader:
    """Turns messages into output rows (lists of output column values)."""

    def __init__(self, plan: Plan, with_fid: bool = False) -> None:
        self.cols = plan.out_cols
        self.scalar = plan.out_scalar
        self.with_fid = with_fid
        self.head: Head | None = None
        self.convert: Any = None

    def feed(self, msgs: list[Message], sink: deque[Any]) -> None:
        """Append the output rows carried by ``msgs`` to ``sink``."""
        for msg in msgs:
            if type(msg) is list:
                if not self.scalar:
                    rows = map(self.convert, msg)
                    if self.with_fid:
                        assert self.head is not None
                        fid = self.head.fid
                        sink.extend((fid, row) for row in rows)
                    else:
                        sink.extend(rows)
            elif msg is not END:
                self.on_head(msg, sink)

    def on_head(self, head: Head, sink: deque[Any]) -> None:
        """Start a frame: emit its single row if every output column is single-valued."""
        self.head = head
        cols = self.cols
        if self.scalar:
            if cols:
                row = [head.vals[c.idx] for c in cols]
                sink.append((head.fid, row) if self.with_fid else row)
            return
        if all(not c.scalar for c in cols):
            if len(cols) == 1:
                idx = cols[0].idx
                self.convert = lambda r: [r[idx]]
            else:
                getter = itemgetter(*(c.idx for c in cols))
                self.convert = lambda r: list(getter(r))
            return
        template = [head.vals[c.idx] if c.scalar else None for c in cols]
        picks = [(k, c.idx) for k, c in enumerate(cols) if not c.scalar]

        def convert(row: Row) -> list[Any]:
            out = list(template)
            for k, idx in picks:
                out[k] = row[idx]
            return out

        self.convert = convert


class Result:
    """A lazily filled, DataQueue-like result: ``get()`` returns the next row or ``None``."""

    def __init__(self, run: Run) -> None:
        self._run = run
        self._reader = OutputReader(run.plan)
        self._ready: deque[list[Any]] = deque()
        self._done = False
        self._touched = False

    @property
    def schema(self) -> list[str]:
        """Output column names."""
        return list(self._run.plan.outputs)

    @property
    def name(self) -> str:
        """The run's name; its threads are named ``<name>-<stage>-<kind>`` while they work."""
        return self._run.name

    def _fill(self) -> bool:
        """Fetch rows until at least one is ready; False once the run is exhausted."""
        self._touched = True
        while not self._ready:
            if self._done:
                return False
            msgs = self._run.fetch()
            if msgs is None:
                self._done = True
                if self._run.on_end is not None:
                    self._run.on_end()
                return False
            self._reader.feed(msgs, self._ready)
        return True

    def get(self) -> list[Any] | None:
        """The next output row as a list (one value per output column), or None when exhausted."""
        if self._ready or self._fill():
            return self._ready.popleft()
        return None

    def get_dict(self, cols: list[str] | None = None) -> dict[str, Any] | None:
        """The next output row as ``{column: value}`` (optionally only ``cols``)."""
        row = self.get()
        if row is None:
            return None
        return {k: v for k, v in zip(self.schema, row, strict=True) if cols is None or k in cols}

    def to_list(self, kv_format: bool = False) -> list[Any]:
        """Drain every remaining row (as lists, or dicts with ``kv_format=True``)."""
        rows = list(self)
        if kv_format:
            return [dict(zip(self.schema, row, strict=True)) for row in rows]
        return rows

    def __iter__(self) -> Iterator[list[Any]]:
        ready = self._ready
        while ready or self._fill():
            while ready:
                yield ready.popleft()

    def close(self) -> None:
        """Stop the run now if it has not finished (idempotent)."""
        if not self._done:
            self._done = True
            self._ready.clear()
            self._run.cancel()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the run's threads to end; True if they all did."""
        return self._run.join(timeout)

    def __enter__(self) -> Result:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if not getattr(self, "_done", True):
            if not self._touched and not sys.is_finalizing():
                warnings.warn(
                    "pipeline result dropped before it was read; its run was cancelled "
                    "(drain it with .to_list() or iterate it to run the pipeline to the end)",
                    RuntimeWarning,
                    stacklevel=2,
                )
            self.close()
