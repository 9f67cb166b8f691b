"""Start-up section: `mmrag --help`, a command's --help and a typo, against a bare interpreter.

Each figure is the median wall time of fresh processes; the baseline, ``python -c pass``, is
what any Python command costs here, so the ratio says what mmrag adds (the CLI imports no
model, store or web library before parsing).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from functools import partial

from mmrag.bench.measure import median_s
from mmrag.bench.report import Row

RUNS = 5
TARGET = "<= 10"  # well under a second where a bare interpreter takes ~20-50 ms
COMMANDS = (
    ("mmrag --help", ["-m", "mmrag", "--help"]),
    ("mmrag search --help", ["-m", "mmrag", "search", "--help"]),
    ("mmrag serch (a typo)", ["-m", "mmrag", "serch"]),
)


def _run(argv: list[str]) -> None:
    """One fresh interpreter running ``argv``, its output discarded."""
    subprocess.run([sys.executable, *argv], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=False)


def startup_section(log: Callable[[str], None], runs: int = RUNS) -> list[Row]:
    """Median wall ms of each CLI start against ``python -c pass``."""
    baseline_ms = median_s(lambda: _run(["-c", "pass"]), runs) * 1000
    rows = []
    for figure, argv in COMMANDS:
        ms = median_s(partial(_run, argv), runs) * 1000
        log(f"startup: {figure} {ms:.0f} ms (python -c pass {baseline_ms:.0f} ms)")
        rows.append(Row(
            "startup", figure, ms, "ms", baseline=baseline_ms, baseline_name="python -c pass",
            target=TARGET, note=f"median of {runs} fresh processes",
        ))
    return rows
