"""The bench report: its table rows, the machine they were measured on, and how it is shown."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Row:
    """One line of the table: a figure, its baseline, and the target on their ratio."""

    section: str
    figure: str
    value: float | None
    unit: str
    baseline: float | None = None
    baseline_name: str = ""
    target: str = ""  # e.g. ">= 0.85" or "<= 1.3" on value/baseline
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.baseline:
            return None
        return self.value / self.baseline

    @property
    def met(self) -> bool | None:
        if not self.target or self.ratio is None:
            return None
        op, bound = self.target.split()
        return self.ratio >= float(bound) if op == ">=" else self.ratio <= float(bound)

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "ratio": self.ratio, "met": self.met}


@dataclass
class Report:
    """The run's machine facts and its table rows."""

    machine: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"machine": self.machine, "rows": [r.as_dict() for r in self.rows],
                "extra": self.extra}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_facts() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    import torch

    def ver(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "-"

    return {
        "cpu": cpu_model(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__, "open_clip": ver("open_clip_torch"),
        "milvus_lite": ver("milvus-lite"), "pymilvus": ver("pymilvus"),
        "python": platform.python_version(), "load_start": os.getloadavg(),
    }


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"


def table_rows(report: Report) -> list[list[str]]:
    out = []
    for r in report.rows:
        met = {True: "yes", False: "NO", None: "-"}[r.met]
        ratio = f"{r.ratio:.2f}x" if r.ratio is not None else "-"
        base = f"{_fmt(r.baseline)} ({r.baseline_name})" if r.baseline is not None else "-"
        out.append([r.section, r.figure, f"{_fmt(r.value)} {r.unit}".strip(), base, ratio,
                    r.target or "-", met, r.note])
    return out


HEADERS = ["section", "figure", "value", "baseline", "ratio", "target", "met?", "note"]


def _units() -> str:
    from retrieval.embedders.precision import cpu_bf16_units

    units = cpu_bf16_units()
    return f"; CPU bf16 units: {units}" if units else "; no CPU bf16 units"


def machine_line(report: Report) -> str:
    m = report.machine
    load = lambda t: "/".join(f"{x:.2f}" for x in t)  # noqa: E731
    return (f"{m['cpu']}, {m['cores']} cores, torch {m['torch']} ({m['torch_threads']} threads, "
            f"precision {m.get('precision', 'fp32')}{_units()}), "
            f"open_clip {m['open_clip']}, milvus-lite {m['milvus_lite']}, pymilvus "
            f"{m['pymilvus']}; load average (1/5/15 min) {load(m['load_start'])} at start, "
            f"{load(m.get('load_end', m['load_start']))} at end; {m.get('elapsed_s', '?')} s")


def render_rich(report: Report) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="mmrag bench", caption=machine_line(report), show_lines=False)
    for h in HEADERS:
        table.add_column(h, overflow="fold")
    for row in table_rows(report):
        table.add_row(*row)
    Console(width=max(160, Console().width)).print(table)


def render_markdown(report: Report) -> str:
    lines = [f"_{machine_line(report)}_", "", "| " + " | ".join(HEADERS) + " |",
             "|" + "---|" * len(HEADERS)]
    for row in table_rows(report):
        lines.append("| " + " | ".join(c.replace("|", "/") for c in row) + " |")
    return "\n".join(lines) + "\n"
