"""Start-up waits (#17.9): a slow start is reported as a timeout, and the embedded Milvus server
has a place of its own (pid file, data dir, ports), whatever else runs on the machine."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from retrieval.errors import StoreUnavailableError
from retrieval.stores import open_store
from tests.support.milvus_server import EmbeddedServer


def test_a_lite_start_timeout_says_it_was_a_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Lite process that starts but does not answer in time (here: its socket never accepts,
    as under heavy load) is reported as a start-up timeout, not as another process's file."""
    from milvus_lite.server_manager import server_manager_instance

    silent = tmp_path / "silent.sock"
    with socket.socket(socket.AF_UNIX) as never_accepts:
        never_accepts.bind(str(silent))  # bound, never listening: connections are refused
        monkeypatch.setattr(server_manager_instance, "start_and_get_uri",
                            lambda path, args=None: f"unix:{silent}")
        monkeypatch.setenv("MMRAG_LITE_START_TIMEOUT_S", "0.5")
        db = tmp_path / "fresh.db"
        with pytest.raises(StoreUnavailableError) as caught:
            open_store(str(db), "items")
    message = str(caught.value)
    assert f"Milvus Lite for {db} did not answer within 0.5 s of starting" in message
    assert "start-up timeout" in message and "MMRAG_LITE_START_TIMEOUT_S" in message
    assert "another process" not in message
    assert re.search(r"its process \(pid \d+\) is still running", message), message
    monkeypatch.undo()
    with open_store(str(db), "items") as store:  # the same file opens with a real Lite
        assert not store.exists()


def test_the_embedded_server_has_a_pid_file_of_its_own(milvus_server: EmbeddedServer) -> None:
    pid_file = milvus_server.pid_file
    assert pid_file is not None
    assert pid_file.name == f"standalone-{milvus_server.alias}.pid" != "standalone.pid"
    assert pid_file.read_text().strip() == str(milvus_server.pid)
    assert (milvus_server.data_dir / "configs" / "embedEtcd.yaml").is_file()
