"""Compile node specs into an execution plan: column slots, per-input vs per-row levels.

Data model (towhee's, made row-aligned): each pipeline input is a *frame*. A frame has one
*head* holding single-valued columns (the inputs, and anything computed only from them) and,
once a ``flat_map`` or ``window`` has run, a sequence of *rows* holding per-row columns.
Single-valued columns broadcast over rows. A map/filter whose inputs are all single-valued runs
once per frame (``head`` level); otherwise it runs per row. As in towhee, a frame left with no
rows is dropped at the first node that still needs a per-row column (``needs_rows``). Every node
output gets a fresh slot, so a slot is written once and concurrent stages never race on it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pipelines.errors import SchemaError
from pipelines.registry import OperatorHandle
from pipelines.schema import NodeSpec, Schema

Level = Literal["head", "row"]


@dataclass(frozen=True)
class Col:
    """Where a column lives: a head slot (single-valued) or a row slot (per-row)."""

    scalar: bool
    idx: int


@dataclass(frozen=True)
class StagePlan:
    """One node, compiled: its callable, level and column slots."""

    spec: NodeSpec
    index: int
    fn: Callable[..., Any]
    level: Level
    rows_in: bool
    ins: tuple[Col, ...]
    outs: tuple[Col, ...]
    copies: tuple[Col, ...] = ()
    keep_rows: bool = False
    needs_rows: bool = False

    @property
    def op_name(self) -> str:
        """Operator name used in error messages."""
        return self.spec.op_name

    @property
    def label(self) -> str:
        """Node position and shape used in error messages and thread names."""
        return self.spec.describe(self.index)


@dataclass(frozen=True)
class Plan:
    """A compiled pipeline: stages plus the slot layout of heads, rows and outputs."""

    inputs: Schema
    outputs: Schema
    stages: tuple[StagePlan, ...]
    head_width: int
    row_width: int
    out_cols: tuple[Col, ...]
    out_scalar: bool


def _liveness(nodes: tuple[NodeSpec, ...], outputs: Schema) -> list[set[str]]:
    """Names still needed after each node (backwards from the output columns)."""
    live = set(outputs)
    after: list[set[str]] = [set() for _ in nodes]
    for i in range(len(nodes) - 1, -1, -1):
        after[i] = set(live)
        live = (live - set(nodes[i].outputs)) | set(nodes[i].reads)
    return after


def _callable(fn: Callable[..., Any]) -> Callable[..., Any]:
    return fn.get_op() if isinstance(fn, OperatorHandle) else fn


def compile_plan(inputs: Schema, nodes: tuple[NodeSpec, ...], outputs: Schema) -> Plan:
    """Check columns are declared before use and lay out slots for every node."""
    bind: dict[str, Col] = {name: Col(True, i) for i, name in enumerate(inputs)}
    widths = {"head": len(inputs), "row": 0}
    live_after = _liveness(nodes, outputs)
    rows = False
    stages: list[StagePlan] = []

    def lookup(names: Schema, where: str) -> tuple[Col, ...]:
        missing = [n for n in names if n not in bind]
        if missing:
            known = sorted(bind)
            raise SchemaError(f"{where} reads undeclared column(s) {missing}; known: {known}")
        return tuple(bind[n] for n in names)

    def fresh(names: Schema, scalar: bool) -> tuple[Col, ...]:
        kind = "head" if scalar else "row"
        cols = []
        for name in names:
            col = Col(scalar, widths[kind])
            widths[kind] += 1
            bind[name] = col
            cols.append(col)
        return tuple(cols)

    for index, spec in enumerate(nodes):
        where = spec.describe(index)
        ins = lookup(spec.filter_by if spec.kind == "filter" else spec.inputs, where)
        copies = lookup(spec.inputs, where) if spec.kind == "filter" else ()
        level: Level = "row"
        keep_rows = False
        rows_in = rows
        live_in = (live_after[index] - set(spec.outputs)) | set(spec.reads)
        needs_rows = rows and any(n in bind and not bind[n].scalar for n in live_in)
        if spec.kind in ("map", "filter"):
            overwrites_row = any(n in bind and not bind[n].scalar for n in spec.outputs)
            single = all(c.scalar for c in ins + copies) and not overwrites_row
            level = "head" if not rows or single else "row"
        elif spec.kind == "flat_map":
            level = "row" if rows else "head"
        elif spec.kind == "window_all":
            level = "row" if rows else "head"
            carried = set(live_after[index]) - set(spec.outputs)
            keep_rows = rows and any(n in bind and not bind[n].scalar for n in carried)
        else:
            level = "row" if rows else "head"
        if spec.kind in ("flat_map", "window"):
            outs = fresh(spec.outputs, scalar=False)
            rows = True
        elif spec.kind == "window_all":
            outs = fresh(spec.outputs, scalar=True)
            rows = keep_rows
        else:
            outs = fresh(spec.outputs, scalar=level == "head")
        stages.append(
            StagePlan(
                spec=spec,
                index=index,
                fn=_callable(spec.fn),
                level=level,
                rows_in=rows_in,
                ins=ins,
                outs=outs,
                copies=copies,
                keep_rows=keep_rows,
                needs_rows=needs_rows,
            )
        )
    out_cols = lookup(outputs, "output")
    return Plan(
        inputs=inputs,
        outputs=outputs,
        stages=tuple(stages),
        head_width=widths["head"],
        row_width=widths["row"],
        out_cols=out_cols,
        out_scalar=all(c.scalar for c in out_cols),
    )
