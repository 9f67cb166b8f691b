"""An ingest whose Milvus server is killed mid-write says so and exits 2 (#20.9).

It used to print the store error and then abort in native code at interpreter exit
(``terminate called without an active exception``, exit 134).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from retrieval.errors import StoreError
from retrieval.stores.milvus import MilvusStore
from tests.support.images import write_image_files

ROOT = Path(__file__).resolve().parents[2]
IMAGES = 600
COLLECTION = "dies"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["MMRAG_BATCH_SIZE"] = "8"  # many small writes: the kill lands between two of them
    return env


def _rows(uri: str) -> int:
    """Rows written so far (0 while the collection does not exist yet)."""
    try:
        with MilvusStore(uri, COLLECTION, connect_timeout=2.0) as store:
            return store.count() if store.exists() else 0
    except StoreError:  # not reachable, or the collection not loaded yet
        return 0


def _kill_tree(pid: int) -> None:
    """SIGKILL a process and everything it started."""
    server = psutil.Process(pid)
    for proc in [*server.children(recursive=True), server]:
        proc.kill()
    psutil.wait_procs([server], timeout=30)


@pytest.mark.server
@pytest.mark.slow
def test_an_ingest_whose_server_is_killed_mid_write_exits_2(
    tmp_path: Path, tiny_model_files: tuple[Path, Path]
) -> None:
    milvus = pytest.importorskip("milvus", reason="the 'milvus' test package is not installed")
    from tests.support.milvus_server import run_embedded_server

    write_image_files(tmp_path / "images", IMAGES, sizes=((32, 32),))
    config, checkpoint = tiny_model_files
    with run_embedded_server(milvus, tmp_path / "server") as server:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mmrag", "ingest", str(tmp_path / "images"),
             "--uri", server.uri, "--collection", COLLECTION, "--model", str(config),
             "--pretrained", "", "--checkpoint", str(checkpoint), "--device", "cpu"],
            cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            while _rows(server.uri) == 0 and proc.poll() is None:
                time.sleep(0.2)
            assert proc.poll() is None, "the ingest finished before the server could be killed"
            _kill_tree(server.pid)
            out, err = proc.communicate(timeout=240)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 2, (proc.returncode, out, err)
    assert "mmrag ingest: error: Milvus at" in err and "run the same command to finish" in err, err
    assert "terminate called" not in err and "Traceback" not in err, err
