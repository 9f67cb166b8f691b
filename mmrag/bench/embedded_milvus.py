"""The embedded Milvus 2.3.5 standalone (the ``milvus`` PyPI package), started on loopback.

The bench's server rows and the tests that need a server both start it here: the binary runs
on free loopback ports with its data in a folder of its own and a pid file of its own
(``-alias``), so it never collides with another Milvus standalone on the machine.
"""

from __future__ import annotations

import fcntl
import itertools
import os
import socket
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

# Sized for a loaded machine (2 shared cores under a full test run).
START_TIMEOUT_S = 300.0
# The binary writes its pid file into /run/milvus (or /tmp/milvus when that is not writable),
# ignoring MILVUS_RUN_DIR, and flocks it: every standalone of the machine shares
# standalone.pid. Started with ``-alias NAME`` it uses standalone-NAME.pid instead.
RUNTIME_DIRS = (Path("/run/milvus"), Path("/tmp/milvus"))
# Proxy time ticks every 50 ms instead of 200 ms, so Strong reads wait less.
SERVER_TUNING: dict[str, object] = {"proxy.timeTickInterval": 50}
# Each component advertises 127.0.0.1 to the others (unset, it picks the machine's first
# unicast address and the components talk over it). Milvus 2.3's gRPC servers still listen on
# the wildcard address: the binary has no setting for its listen address.
COMPONENTS = (
    "rootCoord", "proxy", "queryCoord", "queryNode", "indexCoord", "indexNode", "dataCoord",
    "dataNode",
)
SERVER_TUNING.update({f"{component}.ip": "127.0.0.1" for component in COMPONENTS})
# Milvus reads config overrides from the environment; this key is not in the package's
# template. Query nodes pick up flushed, indexed segments after ~1 s instead of ~10 s.
SERVER_ENV = {"QUERYCOORD_UPDATENEXTTARGETINTERVAL": "1"}

_STARTS = itertools.count()


@dataclass
class EmbeddedServer:
    """A running embedded Milvus standalone."""

    uri: str
    start_seconds: float
    data_dir: Path
    alias: str  # the binary's -alias: its pid file is standalone-ALIAS.pid
    pid: int

    @property
    def pid_file(self) -> Path | None:
        """This server's own pid file (None if the binary wrote none where expected)."""
        for directory in RUNTIME_DIRS:
            path = directory / f"standalone-{self.alias}.pid"
            if path.exists():
                return path
        return None


class ServerUnavailable(Exception):
    """The embedded server cannot run here; the message says what to install."""


class ServerFailed(Exception):
    """The embedded server was started but never became healthy; the message has its logs."""


def import_milvus() -> ModuleType:
    """The ``milvus`` package, or ServerUnavailable saying how to install it."""
    try:
        import milvus
    except ImportError as exc:
        raise ServerUnavailable(
            "the embedded Milvus server needs the `milvus` package (pip install "
            "'milvus==2.3.5', in mmrag's test extra)"
        ) from exc
    return milvus


def free_port() -> int:
    """A loopback TCP port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_launcher(data_dir: Path, alias: str) -> Path:
    """A script that runs the binary in data_dir/bin with ``-alias`` (its own pid file)."""
    launcher = data_dir / "launch" / "milvus"
    launcher.parent.mkdir(parents=True, exist_ok=True)
    binaries = data_dir / "bin"
    launcher.write_text(
        "#!/bin/sh\n"
        f'LD_LIBRARY_PATH="{binaries}:$LD_LIBRARY_PATH"; export LD_LIBRARY_PATH\n'
        f'exec "{binaries / "milvus"}" "$@" -alias "{alias}"\n',
        encoding="utf-8",
    )
    launcher.chmod(0o755)
    return launcher


def write_etcd_config(data_dir: Path, client_port: int) -> Path:
    """The embedded etcd's config: its client port and a free peer port (etcd's default peer
    port, 2380, is fixed and would collide with another standalone's)."""
    peer = f"http://127.0.0.1:{free_port()}"
    client = f"http://127.0.0.1:{client_port}"
    path = data_dir / "configs" / "embedEtcd.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"name: default\nlisten-client-urls: {client}\nadvertise-client-urls: {client}\n"
        f"listen-peer-urls: {peer}\ninitial-advertise-peer-urls: {peer}\n"
        f"initial-cluster: default={peer}\n",
        encoding="utf-8",
    )
    return path


def link_cached_binaries(milvus: ModuleType, data_dir: Path) -> None:
    """Unpack the server's 246 MB of binaries once per machine and user, and link them in."""
    unpack = getattr(milvus, "_initialize_data_files", None)
    if unpack is None:  # another package version: let start() unpack into data_dir
        return
    cache = Path(tempfile.gettempdir()) / f"mmrag-milvus-{milvus.__version__}-{os.getuid()}"
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one process unpacks, the others wait for it
        unpack(str(cache))
    (data_dir / "bin").symlink_to(cache / "bin", target_is_directory=True)


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


def timeout_message(step: str, data_dir: Path, timeout_s: float, hint: str = "") -> str:
    """A start-up that ran out of time, said as a timeout (with the caller's knob and logs)."""
    knob = f"; {hint}" if hint else ""
    return (
        f"embedded Milvus did not {step} within {timeout_s:g} s (a start-up timeout: the "
        f"machine may be loaded{knob}). Logs in {data_dir}:\n{log_tail(data_dir)}"
    )


def wait_until_serving(uri: str, deadline: float) -> None:
    """Wait until a client can connect (healthz can turn OK slightly before the proxy)."""
    from retrieval.errors import StoreUnavailableError
    from retrieval.stores.milvus import MilvusStore

    while True:
        try:
            MilvusStore(uri, "probe", connect_timeout=2.0).close()
            return
        except StoreUnavailableError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _server(milvus: ModuleType, config: object, launcher: Path) -> Any:
    """The package's MilvusServer, started through ``launcher`` instead of the bare binary."""

    class LoopbackServer(milvus.MilvusServer):  # type: ignore[name-defined]
        def get_milvus_executable_path(self) -> str:
            return str(launcher)

    return LoopbackServer(config, wait_for_started=False)


def _start(server: Any, env: dict[str, str]) -> None:
    """server.start() with ``env`` added to the environment it copies for the child."""
    saved: dict[str, str | None] = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        server.start()
    finally:
        for name, before in saved.items():
            if before is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = before


@contextmanager
def run_embedded_server(
    milvus: ModuleType, data_dir: Path, timeout_s: float = START_TIMEOUT_S, *, hint: str = ""
) -> Iterator[EmbeddedServer]:
    """Start the embedded standalone in data_dir, yield it once it serves, stop it after;
    ``hint`` (how to wait longer) is added to a timeout's message."""
    from retrieval.errors import StoreUnavailableError

    started = time.monotonic()
    deadline = started + timeout_s
    data_dir.mkdir(parents=True, exist_ok=True)
    link_cached_binaries(milvus, data_dir)
    alias = f"mmrag{os.getpid()}x{next(_STARTS)}"  # every server of a process gets its own
    config = milvus.MilvusServerConfig(data_dir=str(data_dir))
    for key, value in SERVER_TUNING.items():
        config.set(key, value)
    etcd_port = free_port()
    config.set("etcd_port", etcd_port)  # free now, so the package's resolve() keeps it
    server = _server(milvus, config, write_launcher(data_dir, alias))
    _start(server, {**SERVER_ENV, "ETCD_CONFIG_PATH": str(write_etcd_config(data_dir, etcd_port))})
    try:
        while not healthy(server.webservice_port):
            proc = server.server_proc
            if proc is None or proc.poll() is not None:
                raise ServerFailed(
                    f"embedded Milvus exited while starting (logs in {data_dir}):\n"
                    f"{log_tail(data_dir)}"
                )
            if time.monotonic() > deadline:
                raise ServerFailed(timeout_message("become healthy", data_dir, timeout_s, hint))
            time.sleep(0.2)
        uri = f"http://127.0.0.1:{server.listen_port}"
        try:
            wait_until_serving(uri, deadline)
        except StoreUnavailableError as exc:
            raise ServerFailed(
                timeout_message(f"accept clients ({exc})", data_dir, timeout_s, hint)
            ) from exc
        yield EmbeddedServer(
            uri=uri, start_seconds=time.monotonic() - started, data_dir=data_dir, alias=alias,
            pid=server.server_proc.pid,
        )
    finally:
        server.stop()


@contextmanager
def embedded_milvus(work: Path) -> Iterator[str]:
    """The bench's server: started under ``work``, its URI yielded, stopped after; a server
    that cannot run or start here is ServerUnavailable (the bench skips its rows)."""
    milvus = import_milvus()
    data_dir = Path(tempfile.mkdtemp(prefix="milvus-", dir=work))
    try:
        with run_embedded_server(milvus, data_dir) as server:
            yield server.uri
    except ServerFailed as exc:
        raise ServerUnavailable(str(exc)) from exc
