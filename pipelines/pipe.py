"""towhee-compatible builder (``pipe.input(...).map(...).output(...)``) and runnable pipeline."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable
from typing import Any

from pipelines.errors import SchemaError
from pipelines.plan import Plan, compile_plan
from pipelines.registry import OperatorHandle
from pipelines.results import ListResult, column_types
from pipelines.runtime import ERROR_JOIN_TIMEOUT_S, OutputReader, Result, Run, head_values
from pipelines.schema import NodeConfig, NodeKind, NodeSpec, Schema, SchemaLike, as_schema

Fn = Callable[..., Any]


class Pipeline:
    """An immutable chain of nodes; every method returns a new, longer pipeline."""

    def __init__(self, inputs: Schema, nodes: tuple[NodeSpec, ...] = ()) -> None:
        self._inputs = inputs
        self._nodes = nodes

    @classmethod
    def input(cls, *schema: str) -> Pipeline:
        """Start a pipeline whose calls take one value per column of ``schema``."""
        inputs = as_schema(schema, "input")
        if len(set(inputs)) != len(inputs):
            raise SchemaError(f"input columns must be distinct, got {inputs}")
        return cls(inputs)

    @property
    def columns(self) -> set[str]:
        """Every column declared so far."""
        cols = set(self._inputs)
        for node in self._nodes:
            cols.update(node.outputs)
        return cols

    def _add(
        self,
        kind: NodeKind,
        input_schema: SchemaLike,
        output_schema: SchemaLike,
        fn: Fn,
        config: Any,
        **extra: Any,
    ) -> Pipeline:
        if not callable(fn):
            raise SchemaError(f"{kind}: fn must be callable or an ops.<ns>.<name>(...), got {fn!r}")
        spec = NodeSpec(
            kind=kind,
            inputs=as_schema(input_schema, f"{kind} inputs"),
            outputs=as_schema(output_schema, f"{kind} outputs"),
            fn=fn,
            config=NodeConfig.parse(config),
            **extra,
        )
        missing = [c for c in spec.reads if c not in self.columns]
        if missing:
            raise SchemaError(
                f"{spec.describe(len(self._nodes))} reads undeclared column(s) {missing}; "
                f"known: {sorted(self.columns)}"
            )
        return Pipeline(self._inputs, (*self._nodes, spec))

    def map(
        self, input_schema: SchemaLike, output_schema: SchemaLike, fn: Fn, config: Any = None
    ) -> Pipeline:
        """One call per row (or per input, if every input column is single-valued).

        ``config={'batch_size': N}`` calls fn on lists (one per input column) of N rows and
        expects a list of N results (a tuple of lists for several outputs);
        ``config={'workers': N}`` runs calls on N threads, keeping row order.
        An output schema of ``()`` discards the result.
        """
        return self._add("map", input_schema, output_schema, fn, config)

    def flat_map(
        self, input_schema: SchemaLike, output_schema: SchemaLike, fn: Fn, config: Any = None
    ) -> Pipeline:
        """Each item of fn's iterable result becomes a row; other columns are carried along.

        With ``batch_size`` fn gets lists and returns one iterable per row.
        """
        return self._add("flat_map", input_schema, output_schema, fn, config)

    def filter(
        self,
        input_schema: SchemaLike,
        output_schema: SchemaLike,
        filter_columns: SchemaLike,
        fn: Fn,
        config: Any = None,
    ) -> Pipeline:
        """Keep rows where ``fn(*filter_columns)`` is true, copying input columns to outputs."""
        inputs = as_schema(input_schema, "filter inputs")
        outputs = as_schema(output_schema, "filter outputs")
        if len(inputs) != len(outputs):
            raise SchemaError(f"filter needs as many output as input columns: {inputs} {outputs}")
        filter_by = as_schema(filter_columns, "filter columns")
        return self._add("filter", inputs, outputs, fn, config, filter_by=filter_by)

    def window(
        self,
        input_schema: SchemaLike,
        output_schema: SchemaLike,
        size: int,
        step: int,
        fn: Fn,
        config: Any = None,
    ) -> Pipeline:
        """fn gets one list per input column for windows of ``size`` rows, every ``step`` rows."""
        for what, value in (("size", size), ("step", step)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise SchemaError(f"window {what} must be a positive int, not {value!r}")
        return self._add("window", input_schema, output_schema, fn, config, size=size, step=step)

    def window_all(
        self, input_schema: SchemaLike, output_schema: SchemaLike, fn: Fn, config: Any = None
    ) -> Pipeline:
        """fn gets all rows of an input at once (one list per input column)."""
        return self._add("window_all", input_schema, output_schema, fn, config)

    def output(self, *output_schema: str) -> RuntimePipeline:
        """Close the pipeline; operators from ``ops`` are instantiated now."""
        outputs = as_schema(output_schema, "output")
        return RuntimePipeline(compile_plan(self._inputs, self._nodes, outputs))


pipe = Pipeline


class RuntimePipeline:
    """A runnable pipeline: ``p(*inputs)``, ``p.batch(list)``, ``p.lazy(x)``, ``p.stream(it)``."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan

    @property
    def input_schema(self) -> Schema:
        """Input column names."""
        return self.plan.inputs

    @property
    def output_schema(self) -> Schema:
        """Output column names."""
        return self.plan.outputs

    def __call__(self, *inputs: Any) -> ListResult:
        """Run on one input to completion, as towhee's ``p(x)`` does, and return its rows.

        The run has ended (every thread of it included) when this returns, so a result that is
        never read still inserted its rows; use :meth:`lazy` to stream a large output instead.
        """
        values = head_values(self.plan, inputs, single=False)
        run = Run(self.plan)
        run.feed_one(values)
        rows: list[list[Any]] = []
        self._drain(run, OutputReader(self.plan), rows)
        return ListResult(self.plan.outputs, rows, column_types(self.plan))

    def lazy(self, *inputs: Any) -> Result:
        """Run on one input, rows streaming into the returned result as it is read.

        Closing (or dropping) the result stops the run; rows not read by then are not computed.
        """
        values = head_values(self.plan, inputs, single=False)
        run = Run(self.plan, on_end=self._calls_finished)
        run.feed_one(values)
        return Result(run)

    def stream(self, inputs: Iterable[Any]) -> Generator[list[Any], None, None]:
        """Run on many inputs, yielding output rows lazily, in input order.

        Each input is a tuple of column values, or the bare value for a one-column input.
        Closing the generator (or dropping it) stops the run.
        """
        run = Run(self.plan, on_end=self._calls_finished)
        run.feed_iter(inputs)
        result = Result(run)
        try:
            yield from result
        finally:
            result.close()

    def batch(self, batch_inputs: Iterable[Any]) -> list[ListResult]:
        """Run on many inputs to completion; one result per input (towhee's ``batch``)."""
        inputs = list(batch_inputs)
        run = Run(self.plan)
        run.feed_iter(inputs)
        groups: list[list[list[Any]]] = [[] for _ in inputs]
        self._drain(run, OutputReader(self.plan, with_fid=True), _Sink(groups))
        types = column_types(self.plan)
        return [ListResult(self.plan.outputs, rows, types) for rows in groups]

    def _drain(self, run: Run, reader: OutputReader, sink: Any) -> None:
        """Read a run to its end, wait for its threads, then tell operators the call ended."""
        try:
            while (msgs := run.fetch()) is not None:
                reader.feed(msgs, sink)
        finally:
            run.cancel()
            run.join(None if run.ctl.error is None else ERROR_JOIN_TIMEOUT_S)
        self._calls_finished()

    def _calls_finished(self) -> None:
        """Call ``end_of_call()`` on every operator that has one (e.g. ann_insert flushes)."""
        for fn in self._operators():
            hook = getattr(fn, "end_of_call", None)
            if callable(hook):
                hook()

    def _operators(self) -> list[Any]:
        """Each stage's operator once (a shared instance is listed once)."""
        seen: dict[int, Any] = {}
        for stage in self.plan.stages:
            seen.setdefault(id(stage.fn), stage.fn)
        return list(seen.values())

    def flush(self) -> None:
        """Call ``flush()`` on every operator that has one (towhee compatibility)."""
        for fn in self._operators():
            flush = getattr(fn, "flush", None)
            if callable(flush):
                flush()

    def __repr__(self) -> str:
        steps = " -> ".join(s.spec.kind for s in self.plan.stages)
        plan = self.plan
        return f"RuntimePipeline({plan.inputs} -> {steps or '(nothing)'} -> {plan.outputs})"


class _Sink:
    """A deque-like sink that routes ``(fid, row)`` pairs to per-input lists."""

    def __init__(self, groups: list[list[list[Any]]]) -> None:
        self.groups = groups

    def append(self, item: tuple[int, list[Any]]) -> None:
        self.groups[item[0]].append(item[1])

    def extend(self, items: Iterable[tuple[int, list[Any]]]) -> None:
        for fid, row in items:
            self.groups[fid].append(row)


__all__ = ["ListResult", "OperatorHandle", "Pipeline", "RuntimePipeline", "pipe"]
