"""``mmrag bench``: ingest, search, store and memory figures, each beside its baseline.

Every section measures its figure and its baseline back to back in the same run, so ratios
are comparable even on a loaded machine; the load average is recorded at start and end.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from mmrag.bench.report import Report, Row, machine_facts, render_markdown, render_rich
from mmrag.bench.sizes import QUICK, TINY, Sizes


def run_bench(
    sizes: Sizes,
    sections: tuple[str, ...] = ("startup", "text", "ingest", "search", "store"),
    log: Callable[[str], None] = print,
    store_python: str | None = None,
    peer_tools: tuple[str, ...] | None = None,
) -> Report:
    """Run the sections in order and return the table."""
    from mmrag.bench import sections as sec

    if sizes.torch_threads:
        import torch

        torch.set_num_threads(sizes.torch_threads)
    report = Report(machine_facts())
    report.machine["precision"] = sizes.precision
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mmrag-bench-", ignore_cleanup_errors=True) as tmp:
        work = Path(tmp)
        if "startup" in sections:
            report.rows += sec.startup_section(log)
        if "peers" in sections:
            rows, data = sec.peers_section(sizes.models[0], sizes, work, log,
                                           peer_tools or sec.PEER_TOOLS)
            report.rows += rows
            report.extra["peers"] = data
        in_process = {"text", "ingest", "search"}.intersection(sections)
        for model in sizes.models if in_process else []:
            text = sec.text_section(model, sizes, log)
            report.extra.setdefault("text", {})[model] = text.figures
            if "text" in sections:
                report.rows += text.rows
                report.rows += sec.precision_section(model, text.embedder, sizes, log)
            if "ingest" in sections:
                text.embedder.batch_size = sizes.batch_size
                report.rows += sec.ingest_section(model, text.embedder, sizes, work, log)
            if "search" in sections and model == sizes.models[0]:
                report.rows += sec.search_section(
                    model, text.embedder, text.batch_per_s, sizes, work, log
                )
            del text
        if "store" in sections:
            rows, data = sec.store_section(sizes, 512, log)
            report.rows += rows
            report.extra["store"] = [data]
            if store_python:
                rows, data = sec.store_section(sizes, 512, log, store_python, ("IP", "COSINE"))
                report.rows += rows
                report.extra["store"].append(data)
    report.machine["load_end"] = os.getloadavg()
    report.machine["elapsed_s"] = round(time.perf_counter() - started, 1)
    return report


__all__ = ["QUICK", "TINY", "Report", "Row", "Sizes", "render_markdown", "render_rich",
           "run_bench"]
