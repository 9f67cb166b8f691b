"""Stages: one thread per node, reading messages from one channel and writing to the next."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from operator import itemgetter
from types import GeneratorType
from typing import Any

from pipelines.channel import END, Channel, Emitter, Head, Message, Row, RunControl
from pipelines.errors import Cancelled, OperatorError, PipelineError
from pipelines.plan import Col, StagePlan

RowReader = Callable[[Row], tuple[Any, ...]]


def from_generator(value: Any, n_out: int) -> Any:
    """towhee's map rule: a generator result becomes a list (one list per output column)."""
    if n_out <= 1:
        return list(value)
    cols: list[list[Any]] = [[] for _ in range(n_out)]
    for item in value:
        for k in range(n_out):
            cols[k].append(item[k])
    return cols


def assign(target: list[Any], outs: tuple[int, ...], value: Any) -> None:
    """Write an operator result into slots: whole value for one output, items for several."""
    if len(outs) == 1:
        target[outs[0]] = value
    elif outs:
        for k, slot in enumerate(outs):
            target[slot] = value[k]


def row_reader(cols: tuple[Col, ...], head: Head) -> RowReader:
    """Build ``row -> args`` for one frame: per-row slots from the row, others from the head."""
    if all(not c.scalar for c in cols):
        if len(cols) == 1:
            idx = cols[0].idx
            return lambda row: (row[idx],)
        getter = itemgetter(*(c.idx for c in cols))
        return getter
    template = [head.vals[c.idx] if c.scalar else None for c in cols]
    picks = [(k, c.idx) for k, c in enumerate(cols) if not c.scalar]

    def read(row: Row) -> tuple[Any, ...]:
        args = list(template)
        for k, idx in picks:
            args[k] = row[idx]
        return tuple(args)

    return read


def head_args(cols: tuple[Col, ...], head: Head) -> tuple[Any, ...]:
    """Arguments of a once-per-frame call: every column is single-valued."""
    vals = head.vals
    return tuple(vals[c.idx] for c in cols)


def item_args(cols: tuple[Col, ...], head: Head, row: Row | None) -> tuple[Any, ...]:
    """Arguments for one item: a row of a frame, or (``row is None``) the frame's head."""
    return tuple(head.vals[c.idx] if c.scalar or row is None else row[c.idx] for c in cols)


class Stage:
    """Base stage: the message loop, error wrapping and pass-through defaults."""

    def __init__(
        self,
        plan: StagePlan,
        ctl: RunControl,
        inq: Channel,
        outq: Channel,
        row_width: int,
        name: str = "mmrag-pipe",
    ) -> None:
        self.plan = plan
        self.name = name
        self.fn = plan.fn
        self.ctl = ctl
        self.inq = inq
        self.outq = outq
        self.out = Emitter(outq)
        self.row_width = row_width
        self.outs = tuple(c.idx for c in plan.outs)
        spec = plan.spec
        self.arg_names = spec.filter_by if spec.kind == "filter" else spec.inputs
        self.head: Head | None = None
        self.held: Head | None = None
        self.threads: list[threading.Thread] = []
        self.setup()

    def setup(self) -> None:
        """Set up per-kind state at the end of ``__init__`` (override; may add worker threads)."""

    def error(
        self, exc: BaseException, args: tuple[Any, ...], batch: bool = False
    ) -> OperatorError:
        """Wrap an operator failure with the operator name and the offending row (or batch)."""
        row = dict(zip(self.arg_names, args, strict=False))
        node = self.plan.label + (" batch" if batch else "")
        return OperatorError(self.plan.op_name, node, row, exc)

    def run(self) -> None:
        """Thread body: process messages until end of stream, cancellation or failure."""
        try:
            self.ctl.guard(self.loop, self.plan.label)
        finally:
            self.cleanup()

    def gate(self, msgs: list[Message]) -> list[Message]:
        """towhee's empty-frame rule: hold each head until a row arrives; drop rowless frames."""
        if not self.plan.needs_rows:
            return msgs
        kept: list[Message] = []
        for msg in msgs:
            if type(msg) is list:
                if self.held is not None:
                    kept.append(self.held)
                    self.held = None
                kept.append(msg)
            elif msg is END:
                if self.held is None:
                    kept.append(msg)
                self.held = None
            else:
                self.held = msg
        return kept

    def loop(self) -> None:
        """Dispatch each message to on_head/on_rows/on_end; flush after every batch."""
        inq, out = self.inq, self.out
        while True:
            msgs = inq.get()
            if msgs is None:
                break
            for msg in self.gate(msgs):
                if type(msg) is list:
                    self.on_rows(msg)
                elif msg is END:
                    self.on_end()
                else:
                    self.on_head(msg)
            out.flush()
        self.on_eos()
        out.flush()
        self.outq.close()

    def cleanup(self) -> None:
        """Release resources when the thread ends (override to stop worker pools)."""

    def on_head(self, head: Head) -> None:
        """A frame starts."""
        self.head = head
        self.out.head(head)

    def on_rows(self, rows: list[Row]) -> None:
        """Rows of the current frame."""
        self.out.rows(rows)

    def on_end(self) -> None:
        """The current frame ends."""
        self.out.end()

    def on_eos(self) -> None:
        """The input stream ends (after the last frame's END)."""

    def expand(self, items: Iterable[Any], parent: Row | None, args: tuple[Any, ...]) -> None:
        """Emit one row per item: a copy of ``parent`` (or a blank row) plus the outputs."""
        outs, out = self.outs, self.out
        blank = [None] * self.row_width if parent is None else parent
        try:
            if len(outs) == 1:
                o = outs[0]
                for item in items:
                    row = blank.copy()
                    row[o] = item
                    out.row(row)
            else:
                for item in items:
                    row = blank.copy()
                    assign(row, outs, item)
                    out.row(row)
        except (Cancelled, PipelineError):
            raise
        except Exception as exc:  # wrapped with context, re-raised on the consumer side
            raise self.error(exc, args) from exc


class MapStage(Stage):
    """``map``: once per frame (single-valued inputs) or once per row."""

    def on_head(self, head: Head) -> None:
        self.head = head
        if self.plan.level == "head":
            args = head_args(self.plan.ins, head)
            try:
                value = self.fn(*args)
                if type(value) is GeneratorType:
                    value = from_generator(value, len(self.outs))
                assign(head.vals, self.outs, value)
            except Exception as exc:  # wrapped with context, re-raised on the consumer side
                raise self.error(exc, args) from exc
        else:
            self.reader = row_reader(self.plan.ins, head)
        self.out.head(head)

    def on_rows(self, rows: list[Row]) -> None:
        if self.plan.level == "row":
            self._map_rows(rows)
        self.out.rows(rows)

    def _map_rows(self, rows: list[Row]) -> None:
        fn, outs, ins = self.fn, self.outs, self.plan.ins
        row: Row = []
        try:
            if len(outs) == 1 and len(ins) == 1 and not ins[0].scalar:
                i, o = ins[0].idx, outs[0]
                for row in rows:
                    value = fn(row[i])
                    if type(value) is GeneratorType:
                        value = from_generator(value, 1)
                    row[o] = value
            else:
                read = self.reader
                for row in rows:
                    value = fn(*read(row))
                    if type(value) is GeneratorType:
                        value = from_generator(value, len(outs))
                    assign(row, outs, value)
        except Exception as exc:  # wrapped with context, re-raised on the consumer side
            raise self.error(exc, self.reader(row) if row else ()) from exc


class FilterStage(Stage):
    """``filter``: keep frames (single-valued test) or rows where ``fn(*filter_cols)`` is true."""

    dropping = False

    def on_head(self, head: Head) -> None:
        self.head = head
        plan = self.plan
        if plan.level == "row":
            self.reader = row_reader(plan.ins, head)
            self.out.head(head)
            return
        args = head_args(plan.ins, head)
        try:
            keep = self.fn(*args)
        except Exception as exc:  # wrapped with context, re-raised on the consumer side
            raise self.error(exc, args) from exc
        self.dropping = not keep
        if keep:
            vals = head.vals
            for src, slot in zip(plan.copies, self.outs, strict=True):
                vals[slot] = vals[src.idx]
            self.out.head(head)

    def on_rows(self, rows: list[Row]) -> None:
        if self.plan.level == "head":
            if not self.dropping:
                self.out.rows(rows)
            return
        fn, read = self.fn, self.reader
        kept: list[Row] = []
        row: Row = []
        try:
            for row in rows:
                if fn(*read(row)):
                    kept.append(row)
        except Exception as exc:  # wrapped with context, re-raised on the consumer side
            raise self.error(exc, read(row)) from exc
        head = self.head
        assert head is not None
        for src, slot in zip(self.plan.copies, self.outs, strict=True):
            if src.scalar:
                value = head.vals[src.idx]
                for row in kept:
                    row[slot] = value
            else:
                for row in kept:
                    row[slot] = row[src.idx]
        self.out.rows(kept)

    def on_end(self) -> None:
        if not self.dropping:
            self.out.end()
        self.dropping = False


class FlatMapStage(Stage):
    """``flat_map``: each result item becomes a row (single-valued columns broadcast)."""

    def on_head(self, head: Head) -> None:
        self.head = head
        self.out.head(head)
        if self.plan.level == "head":
            args = head_args(self.plan.ins, head)
            self.expand(self.call(args), None, args)
        else:
            self.reader = row_reader(self.plan.ins, head)

    def on_rows(self, rows: list[Row]) -> None:
        read = self.reader
        for row in rows:
            args = read(row)
            self.expand(self.call(args), row, args)

    def call(self, args: tuple[Any, ...]) -> Any:
        """Call the operator, wrapping its failure."""
        try:
            return self.fn(*args)
        except Exception as exc:  # wrapped with context, re-raised on the consumer side
            raise self.error(exc, args) from exc


class _Window:
    """One open window: its start index, collected column values and first row."""

    __slots__ = ("cols", "first", "start")

    def __init__(self, start: int, n_cols: int, first: Row | None) -> None:
        self.start = start
        self.cols: list[list[Any]] = [[] for _ in range(n_cols)]
        self.first = first


class WindowStage(Stage):
    """``window``: fn gets one list per input column for each window of ``size`` rows."""

    def on_head(self, head: Head) -> None:
        self.head = head
        self.index = 0
        self.open: list[_Window] = []
        if self.plan.rows_in:
            self.reader = row_reader(self.plan.ins, head)
        self.out.head(head)

    def on_rows(self, rows: list[Row]) -> None:
        read = self.reader
        for row in rows:
            self.add(read(row), row)

    def on_end(self) -> None:
        head = self.head
        assert head is not None
        if not self.plan.rows_in:
            self.add(head_args(self.plan.ins, head), None)
        for window in self.open:
            self.emit(window)
        self.open = []
        self.out.end()

    def add(self, values: tuple[Any, ...], row: Row | None) -> None:
        """towhee's window rule: windows start every ``step`` rows; one closes per row at most."""
        spec = self.plan.spec
        i = self.index
        self.index += 1
        if self.open and self.open[0].start + spec.size <= i:
            self.emit(self.open.pop(0))
        if i % spec.step == 0:
            self.open.append(_Window(i, len(values), row))
        for window in self.open:
            for col, value in zip(window.cols, values, strict=True):
                col.append(value)

    def emit(self, window: _Window) -> None:
        """Call fn on a window and emit its row (a copy of the window's first row + outputs)."""
        try:
            value = self.fn(*window.cols)
        except Exception as exc:  # wrapped with context, re-raised on the consumer side
            raise self.error(exc, tuple(window.cols)) from exc
        row = [None] * self.row_width if window.first is None else window.first.copy()
        assign(row, self.outs, value)
        self.out.row(row)


class WindowAllStage(Stage):
    """``window_all``: fn gets every row of a frame at once; outputs are single-valued."""

    def on_head(self, head: Head) -> None:
        self.head = head
        self.cols: list[list[Any]] = [[] for _ in self.plan.ins]
        self.rows: list[Row] = []
        self.seen = 0
        if self.plan.rows_in:
            self.reader = row_reader(self.plan.ins, head)

    def on_rows(self, rows: list[Row]) -> None:
        read, cols = self.reader, self.cols
        for row in rows:
            for col, value in zip(cols, read(row), strict=True):
                col.append(value)
        self.seen += len(rows)
        if self.plan.keep_rows:
            self.rows.extend(rows)

    def on_end(self) -> None:
        head = self.head
        assert head is not None
        if not self.plan.rows_in:
            for col, value in zip(self.cols, head_args(self.plan.ins, head), strict=True):
                col.append(value)
        elif not self.seen:
            return  # towhee: an empty frame never calls fn and yields nothing
        try:
            value = self.fn(*self.cols)
        except Exception as exc:  # wrapped with context, re-raised on the consumer side
            raise self.error(exc, tuple(self.cols)) from exc
        assign(head.vals, self.outs, value)
        self.out.head(head)
        if self.plan.keep_rows:
            self.out.rows(self.rows)
        self.rows, self.cols = [], []
        self.out.end()


STAGES: dict[str, type[Stage]] = {
    "map": MapStage,
    "filter": FilterStage,
    "flat_map": FlatMapStage,
    "window": WindowStage,
    "window_all": WindowAllStage,
}


def pass_through(msg: Message, out: Emitter) -> None:
    """Forward any message unchanged."""
    if type(msg) is list:
        out.rows(msg)
    elif msg is END:
        out.end()
    else:
        out.head(msg)
