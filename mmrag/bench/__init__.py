"""``mmrag bench``: ingest, search, store and memory figures, each beside its baseline.

Every section measures its figure and its baseline back to back in the same run, so ratios
are comparable even on a loaded machine; the load average is recorded at start and end.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmrag.bench.sections import Row, Sizes

QUICK = dict(images=64, naive_images=16, memory_images=256, bare_batches=2, vectors=10_000,
             ann_vectors=0, queries=12, concurrent_queries=400, store_sizes=[10_000],
             store_queries=20)
TINY = dict(images=8, naive_images=4, memory_images=8, batch_size=4, bare_batches=1,
            vectors=500, ann_vectors=500, queries=3, concurrent_queries=8, clients=4, text_batch=4,
            store_sizes=[500], store_queries=5)


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
    from importlib.metadata import version

    import torch

    def ver(name: str) -> str:
        try:
            return version(name)
        except Exception:  # noqa: BLE001
            return "-"

    return {
        "cpu": cpu_model(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__, "open_clip": ver("open_clip_torch"),
        "milvus_lite": ver("milvus-lite"), "pymilvus": ver("pymilvus"),
        "python": platform.python_version(), "load_start": os.getloadavg(),
    }


def run_bench(
    sizes: Sizes,
    sections: tuple[str, ...] = ("text", "ingest", "search", "store"),
    log: Callable[[str], None] = print,
    store_python: str | None = None,
) -> Report:
    """Run the sections in order and return the table."""
    from mmrag.bench import sections as sec

    if sizes.torch_threads:
        import torch

        torch.set_num_threads(sizes.torch_threads)
    report = Report(machine_facts())
    report.machine["precision"] = sizes.precision
    work = sec.temp_workdir()
    started = time.perf_counter()
    try:
        for model in sizes.models:
            text_rows, info = sec.text_section(model, sizes, log)
            embedder = info.pop("embedder")
            report.extra.setdefault("text", {})[model] = info
            if "text" in sections:
                report.rows += text_rows
                report.rows += sec.precision_section(model, embedder, sizes, log)
            if "ingest" in sections:
                embedder.batch_size = sizes.batch_size
                report.rows += sec.ingest_section(model, embedder, sizes, work, log)
            if "search" in sections and model == sizes.models[0]:
                report.rows += sec.search_section(model, embedder, info, sizes, work, log)
            del embedder
        if "store" in sections:
            rows, data = sec.store_section(sizes, 512, log)
            report.rows += rows
            report.extra["store"] = [data]
            if store_python:
                rows, data = sec.store_section(sizes, 512, log, store_python, ("IP", "COSINE"))
                report.rows += rows
                report.extra["store"].append(data)
    finally:
        sec.cleanup(work)
    report.machine["load_end"] = os.getloadavg()
    report.machine["elapsed_s"] = round(time.perf_counter() - started, 1)
    return report


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


__all__ = ["QUICK", "TINY", "Report", "Row", "Sizes", "render_markdown", "render_rich",
           "run_bench"]
