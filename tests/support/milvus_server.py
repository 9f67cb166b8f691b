"""The embedded Milvus standalone for tests: mmrag.bench.embedded_milvus with the tests' knob.

The start-up wait is sized for a loaded machine; override it with MMRAG_TEST_MILVUS_START_S.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

from mmrag.bench import embedded_milvus
from mmrag.bench.embedded_milvus import EmbeddedServer, ServerFailed, ServerUnavailable

SERVER_START_TIMEOUT_S = float(
    os.environ.get("MMRAG_TEST_MILVUS_START_S", str(embedded_milvus.START_TIMEOUT_S))
)

__all__ = ["EmbeddedServer", "ServerFailed", "ServerUnavailable", "run_embedded_server"]


@contextmanager
def run_embedded_server(milvus: ModuleType, data_dir: Path) -> Iterator[EmbeddedServer]:
    """Start the embedded standalone in data_dir, yield it once it serves, stop it after."""
    hint = "set MMRAG_TEST_MILVUS_START_S to a number of seconds to wait longer"
    with embedded_milvus.run_embedded_server(
        milvus, data_dir, SERVER_START_TIMEOUT_S, hint=hint
    ) as server:
        yield server
