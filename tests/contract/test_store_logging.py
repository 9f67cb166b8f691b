"""Logging belongs to the application: importing the store configures nothing, the CLI does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _pymilvus_level(code: str) -> int:
    """The pymilvus logger's level after running ``code`` in a fresh interpreter."""
    probe = f"{code}\nimport logging\nprint(logging.getLogger('pymilvus').level)\n"
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True
    )
    return int(done.stdout.strip().splitlines()[-1])


def test_importing_the_store_leaves_logging_to_the_application() -> None:
    alone = _pymilvus_level("import pymilvus")  # pymilvus's own import-time default
    assert _pymilvus_level("import retrieval.stores.milvus") == alone


def test_the_cli_keeps_pymilvus_tracebacks_quiet() -> None:
    import logging

    assert _pymilvus_level("from mmrag.cli import configure_logging\n"
                           "configure_logging('info')") == logging.CRITICAL
    # each worker process of `mmrag serve --workers N` builds its app with worker_app()
    assert _pymilvus_level("from mmrag.commands.serve import worker_app\n"
                           "worker_app()") == logging.CRITICAL
