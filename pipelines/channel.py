"""Bounded channels between pipeline threads, the messages they carry, and run control.

A channel carries *messages*: a :class:`Head` opens a frame, lists of rows follow, and
:data:`END` closes the frame. Messages move in bulk (a producer puts a list, the consumer takes
everything queued), so the lock is taken per chunk, not per row. Capacity is counted in rows
(a head counts as one), which bounds memory however long the input is.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from pipelines.errors import Cancelled, PipelineError

Row = list[Any]
Message = Any  # Head | list[Row] | END

CHUNK_ROWS = 128
MAX_MESSAGES = 64


class Head:
    """The single-valued columns of one frame (one pipeline input)."""

    __slots__ = ("fid", "vals")

    def __init__(self, fid: int, vals: list[Any]) -> None:
        self.fid = fid
        self.vals = vals

    def __repr__(self) -> str:
        return f"Head({self.fid})"


class _End:
    """Marker closing a frame."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "END"


END = _End()


class RunControl:
    """Shared cancel flag and first error of one run; cancelling wakes every blocked thread."""

    def __init__(self) -> None:
        self.cancelled = False
        self.error: PipelineError | None = None
        self.channels: list[Channel] = []
        self._lock = threading.Lock()

    def fail(self, error: PipelineError) -> None:
        """Record the first error and cancel the run."""
        with self._lock:
            if self.error is None:
                self.error = error
        self.cancel()

    def cancel(self) -> None:
        """Stop every thread of the run at its next channel operation."""
        self.cancelled = True
        for channel in self.channels:
            channel.wake()

    def guard(self, body: Callable[[], None], what: str) -> None:
        """Run one thread's ``body``: cancellation ends it quietly; a failure fails the run.

        The consumer re-raises the run's first error: a ``PipelineError`` as it is, anything
        else wrapped in one that says ``<what> stopped``.
        """
        try:
            body()
        except Cancelled:
            pass
        except PipelineError as exc:
            self.fail(exc)
        except BaseException as exc:  # noqa: BLE001 - wrapped and re-raised on the consumer side
            err = PipelineError(f"{what} stopped: {type(exc).__name__}: {exc}")
            err.__cause__ = exc
            self.fail(err)


class Channel:
    """A bounded single-producer, single-consumer queue of messages."""

    def __init__(self, ctl: RunControl, capacity: int) -> None:
        self._ctl = ctl
        self._capacity = capacity
        self._dq: deque[Message] = deque()
        self._weight = 0
        self._closed = False
        self._kicks = 0
        self._cond = threading.Condition(threading.Lock())
        ctl.channels.append(self)

    @property
    def hungry(self) -> bool:
        """Nothing is queued (an unlocked peek; used only to decide when to flush early)."""
        return not self._dq

    @property
    def kicks(self) -> int:
        """How many times :meth:`kick` was called (read before checking for finished work)."""
        return self._kicks

    def put(self, msgs: list[Message], weight: int) -> None:
        """Append messages, blocking while the channel is full; raises Cancelled if cancelled."""
        with self._cond:
            while self._weight >= self._capacity and not self._ctl.cancelled:
                self._cond.wait()
            if self._ctl.cancelled:
                raise Cancelled
            self._dq.extend(msgs)
            self._weight += weight
            self._cond.notify_all()

    def get(self, block: bool = True, kicks: int | None = None) -> list[Message] | None:
        """Take every queued message; ``None`` once closed and drained.

        Blocks while empty unless ``block`` is false; with ``kicks`` given, also returns (an
        empty list) as soon as :meth:`kick` has been called since that count was read.
        """
        with self._cond:
            while not self._dq and not self._closed and not self._ctl.cancelled:
                if not block or (kicks is not None and kicks != self._kicks):
                    return []
                self._cond.wait()
            if self._ctl.cancelled:
                raise Cancelled
            if not self._dq:
                return None
            msgs = list(self._dq)
            self._dq.clear()
            self._weight = 0
            self._cond.notify_all()
            return msgs

    def close(self) -> None:
        """Mark the end of the stream (the producer is done)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def kick(self) -> None:
        """Wake a consumer blocked in ``get(kicks=...)`` (a worker finished a job)."""
        with self._cond:
            self._kicks += 1
            self._cond.notify_all()

    def wake(self) -> None:
        """Wake everyone so they notice cancellation."""
        with self._cond:
            self._cond.notify_all()


class Emitter:
    """Output buffer of a stage: merges small row lists and flushes in chunks."""

    __slots__ = ("_chunk", "_out", "msgs", "weight")

    def __init__(self, out: Channel, chunk: int = CHUNK_ROWS) -> None:
        self._out = out
        self._chunk = chunk
        self.msgs: list[Message] = []
        self.weight = 0

    def head(self, head: Head) -> None:
        """Queue a frame head."""
        self.msgs.append(head)
        self.weight += 1
        if len(self.msgs) >= MAX_MESSAGES:
            self.flush()

    def end(self) -> None:
        """Queue a frame end."""
        self.msgs.append(END)
        if len(self.msgs) >= MAX_MESSAGES:
            self.flush()

    def rows(self, rows: list[Row]) -> None:
        """Queue rows (the list is taken over, not copied)."""
        n = len(rows)
        if not n:
            return
        if n > self._chunk:
            for start in range(0, n, self._chunk):
                self.rows(rows[start : start + self._chunk])
            return
        msgs = self.msgs
        if msgs and type(msgs[-1]) is list and len(msgs[-1]) + n <= self._chunk:
            msgs[-1].extend(rows)
        else:
            msgs.append(rows)
        self.weight += n
        if self.weight >= self._chunk or len(msgs) >= MAX_MESSAGES:
            self.flush()

    def row(self, row: Row) -> None:
        """Queue one row; flushes at a full chunk or when the next stage is idle."""
        msgs = self.msgs
        if msgs and type(msgs[-1]) is list:
            msgs[-1].append(row)
        else:
            msgs.append([row])
        self.weight += 1
        if self.weight >= self._chunk or self._out.hungry:
            self.flush()

    def flush(self) -> None:
        """Hand everything buffered to the channel (blocking while it is full)."""
        if self.msgs:
            msgs, weight = self.msgs, self.weight
            self.msgs, self.weight = [], 0
            self._out.put(msgs, weight)
