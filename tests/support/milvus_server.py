"""The embedded Milvus 2.3.5 standalone (the ``milvus`` PyPI package) for tests that need a server.

The binary is started on free loopback ports with its data in a temporary directory; it
flocks a machine-wide pid file, so one runs per machine and a second session waits for it.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from retrieval.errors import StoreUnavailableError
from retrieval.stores.milvus import MilvusStore

SERVER_START_TIMEOUT_S = 90.0
# The binary flocks this file (it ignores MILVUS_RUN_DIR), so only one runs per machine.
PID_FILES = (Path("/run/milvus/standalone.pid"), Path("/tmp/milvus/standalone.pid"))
# Test-only tuning: proxy time ticks every 50 ms instead of 200 ms, so Strong reads wait less.
SERVER_TUNING = {"proxy.timeTickInterval": 50}
# Milvus reads config overrides from the environment; this key is not in the package's
# template. Query nodes pick up flushed, indexed segments after ~1 s instead of ~10 s.
SERVER_ENV = {"QUERYCOORD_UPDATENEXTTARGETINTERVAL": "1"}


@dataclass
class EmbeddedServer:
    """A running embedded Milvus standalone."""

    uri: str
    start_seconds: float
    data_dir: Path


class ServerUnavailable(Exception):
    """The embedded server cannot run here (another one holds the machine-wide lock)."""


class ServerFailed(Exception):
    """The embedded server was started but never became healthy."""


def wait_for_pid_lock(deadline: float) -> str | None:
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


def healthy(port: int) -> bool:
    """Whether the server's /healthz answers OK."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
            return b"OK" in resp.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def log_tail(data_dir: Path) -> str:
    """The last lines of the server's stderr log."""
    log = data_dir / "logs" / "milvus-stderr.log"
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    return "\n".join(lines[-15:])


def link_cached_binaries(milvus: ModuleType, data_dir: Path) -> None:
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


def wait_until_serving(uri: str, deadline: float) -> None:
    """Wait until a client can connect (healthz can turn OK slightly before the proxy)."""
    while True:
        try:
            MilvusStore(uri, "probe", connect_timeout=2.0).close()
            return
        except StoreUnavailableError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@contextmanager
def run_embedded_server(milvus: ModuleType, data_dir: Path) -> Iterator[EmbeddedServer]:
    """Start the embedded standalone in data_dir, yield it once it serves, stop it after."""
    started = time.monotonic()
    deadline = started + SERVER_START_TIMEOUT_S
    busy = wait_for_pid_lock(deadline)
    if busy:
        raise ServerUnavailable(busy)
    link_cached_binaries(milvus, data_dir)
    config = milvus.MilvusServerConfig(data_dir=str(data_dir))
    for key, value in SERVER_TUNING.items():
        config.set(key, value)
    server = milvus.MilvusServer(config, wait_for_started=False)
    saved: dict[str, str | None] = {name: os.environ.get(name) for name in SERVER_ENV}
    os.environ.update(SERVER_ENV)  # start() copies os.environ for the child
    try:
        server.start()
    finally:
        for name, before in saved.items():
            if before is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = before
    try:
        while not healthy(server.webservice_port):
            proc = server.server_proc
            if proc is None or proc.poll() is not None or time.monotonic() > deadline:
                raise ServerFailed(
                    f"embedded Milvus did not start (logs in {data_dir}):\n{log_tail(data_dir)}"
                )
            time.sleep(0.2)
        uri = f"http://127.0.0.1:{server.listen_port}"
        wait_until_serving(uri, deadline)
        yield EmbeddedServer(uri=uri, start_seconds=time.monotonic() - started, data_dir=data_dir)
    finally:
        server.stop()
