"""Store fixtures: a fresh Milvus Lite file per test, and one embedded Milvus 2.3.5 server.

The server comes from the ``milvus`` PyPI package (a real standalone binary); it is started
once per session on free loopback ports with its data in a temporary directory, and every
test gets its own collection on it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from retrieval.errors import StoreError, StoreUnavailableError
from retrieval.stores.milvus import MilvusStore
from tests.contract.helpers import DIM, MODEL, EmbeddedServer, StoreFactory

SERVER_START_TIMEOUT_S = 90.0
# The binary flocks this file (it ignores MILVUS_RUN_DIR), so only one runs per machine.
PID_FILES = (Path("/run/milvus/standalone.pid"), Path("/tmp/milvus/standalone.pid"))
# Test-only tuning: proxy time ticks every 50 ms instead of 200 ms, so Strong reads wait less.
SERVER_TUNING = {"proxy.timeTickInterval": 50}
# Milvus reads config overrides from the environment; this key is not in the package's
# template. Query nodes pick up flushed, indexed segments after ~1 s instead of ~10 s.
SERVER_ENV = {"QUERYCOORD_UPDATENEXTTARGETINTERVAL": "1"}


def _wait_for_pid_lock(deadline: float) -> str | None:
    """Wait until no other embedded Milvus holds the machine-wide pid lock; None when free."""
    for pid_file in PID_FILES:
        if not pid_file.exists():
            continue
        while True:
            with open(pid_file, "a") as handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    holder = pid_file.read_text().strip() or "?"
                else:
                    fcntl.flock(handle, fcntl.LOCK_UN)
                    break
            if time.monotonic() > deadline:
                return f"another Milvus standalone (pid {holder}) holds {pid_file}"
            time.sleep(1.0)
    return None


def _healthy(port: int) -> bool:
    """Whether the server's /healthz answers OK."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
            return b"OK" in resp.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def _log_tail(data_dir: Path) -> str:
    """The last lines of the server's stderr log."""
    log = data_dir / "logs" / "milvus-stderr.log"
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    return "\n".join(lines[-15:])


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    """One embedded Milvus 2.3.5 standalone for the whole session (skips if it cannot run)."""
    milvus = pytest.importorskip("milvus", reason="the 'milvus' test package is not installed")
    started = time.monotonic()
    busy = _wait_for_pid_lock(started + SERVER_START_TIMEOUT_S)
    if busy:
        pytest.skip(f"embedded Milvus server unavailable: {busy}")
    data_dir = tmp_path_factory.mktemp("milvus_server")
    _link_cached_binaries(milvus, data_dir)
    config = milvus.MilvusServerConfig(data_dir=str(data_dir))
    for key, value in SERVER_TUNING.items():
        config.set(key, value)
    server = milvus.MilvusServer(config, wait_for_started=False)
    with pytest.MonkeyPatch.context() as env:  # start() copies os.environ for the child
        for key, value in SERVER_ENV.items():
            env.setenv(key, value)
        server.start()
    try:
        deadline = started + SERVER_START_TIMEOUT_S
        while not _healthy(server.webservice_port):
            proc = server.server_proc
            if proc is None or proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    f"embedded Milvus did not start (logs in {data_dir}):\n{_log_tail(data_dir)}"
                )
            time.sleep(0.2)
        uri = f"http://127.0.0.1:{server.listen_port}"
        _wait_until_serving(uri, deadline)
        yield EmbeddedServer(uri=uri, start_seconds=time.monotonic() - started, data_dir=data_dir)
    finally:
        server.stop()
    shutil.rmtree(data_dir, ignore_errors=True)  # kept above when the server failed


def _link_cached_binaries(milvus: ModuleType, data_dir: Path) -> None:
    """Unpack the server's 246 MB of binaries once per machine (~4.5 s) and link them in."""
    unpack = getattr(milvus, "_initialize_data_files", None)
    if unpack is None:  # another package version: let start() unpack into data_dir
        return
    cache = Path(tempfile.gettempdir()) / f"mmrag-milvus-{milvus.__version__}-{os.getuid()}"
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one session unpacks, the others wait for it
        unpack(str(cache))
    (data_dir / "bin").symlink_to(cache / "bin", target_is_directory=True)


def _wait_until_serving(uri: str, deadline: float) -> None:
    """Wait until a client can connect (healthz can turn OK slightly before the proxy)."""
    while True:
        try:
            MilvusStore(uri, "probe", connect_timeout=2.0).close()
            return
        except StoreUnavailableError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@pytest.fixture(params=["lite", pytest.param("server", marks=pytest.mark.server)])
def backend(request: pytest.FixtureRequest) -> str:
    """Which Milvus the test runs against."""
    return str(request.param)


@pytest.fixture
def store_factory(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[StoreFactory]:
    """Open stores on this test's backend: one .db per test (Lite) or unique collections."""
    opened: list[MilvusStore] = []
    uri = str(tmp_path / "lite" / "store.db")
    if backend == "server":
        uri = request.getfixturevalue("milvus_server").uri
    default_collection = f"t_{uuid.uuid4().hex[:12]}"

    def factory(collection: str | None = None, *, index_type: str = "auto") -> MilvusStore:
        store = MilvusStore(uri, collection or default_collection, index_type=index_type)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        if backend == "server":
            with contextlib.suppress(StoreError):  # best-effort cleanup on a shared server
                store.drop()
        store.close()


@pytest.fixture
def store(store_factory: StoreFactory) -> MilvusStore:
    """A store whose collection exists for MODEL at DIM."""
    made = store_factory()
    made.ensure_collection(DIM, MODEL)
    return made
