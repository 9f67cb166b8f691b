"""The embedded Milvus 2.3.5 standalone (the ``milvus`` package) for the bench's server rows.

Started on free loopback ports with its data in a temporary folder and a pid file of its own
(``-alias``, so it never collides with another standalone of the machine), stopped after.
The same recipe as ``tests/support/milvus_server.py`` (which tests use), kept here because the
bench ships with mmrag and its tests do not.
"""

from __future__ import annotations

import fcntl
import os
import socket
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

START_TIMEOUT_S = 300.0
TUNING = {"proxy.timeTickInterval": 50}  # Strong reads wait less
ENV = {"QUERYCOORD_UPDATENEXTTARGETINTERVAL": "1"}  # indexed segments are served after ~1 s


class ServerUnavailable(Exception):
    """The embedded server cannot run here; the message says what to install or look at."""


def free_port() -> int:
    """A loopback TCP port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _milvus() -> Any:
    try:
        import milvus
    except ImportError as exc:
        raise ServerUnavailable(
            "the embedded Milvus server rows need the `milvus` package (pip install "
            "'milvus==2.3.5', in mmrag's test extra); they are skipped."
        ) from exc
    return milvus


def _launcher(data_dir: Path, alias: str) -> Path:
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


def _etcd_config(data_dir: Path, client_port: int) -> Path:
    peer, client = f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{client_port}"
    path = data_dir / "configs" / "embedEtcd.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"name: default\nlisten-client-urls: {client}\nadvertise-client-urls: {client}\n"
        f"listen-peer-urls: {peer}\ninitial-advertise-peer-urls: {peer}\n"
        f"initial-cluster: default={peer}\n",
        encoding="utf-8",
    )
    return path


def _link_binaries(milvus: Any, data_dir: Path) -> None:
    """Unpack the 246 MB of binaries once per machine and user, and link them in."""
    unpack = getattr(milvus, "_initialize_data_files", None)
    if unpack is None:
        return
    cache = Path(tempfile.gettempdir()) / f"mmrag-milvus-{milvus.__version__}-{os.getuid()}"
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        unpack(str(cache))
    (data_dir / "bin").symlink_to(cache / "bin", target_is_directory=True)


def _healthy(port: int) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
            return b"OK" in resp.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def _log_tail(data_dir: Path) -> str:
    log = data_dir / "logs" / "milvus-stderr.log"
    return "\n".join(log.read_text(errors="replace").splitlines()[-10:]) if log.exists() else ""


@contextmanager
def embedded_milvus(work: Path) -> Iterator[str]:
    """Start the embedded standalone under ``work``; yield its URI once it serves; stop it."""
    from retrieval.errors import StoreUnavailableError
    from retrieval.stores.milvus import MilvusStore

    milvus = _milvus()
    data_dir = Path(tempfile.mkdtemp(prefix="milvus-", dir=work))
    deadline = time.monotonic() + START_TIMEOUT_S
    _link_binaries(milvus, data_dir)
    launcher = _launcher(data_dir, f"mmragbench{os.getpid()}")

    class BenchServer(milvus.MilvusServer):  # type: ignore[name-defined]
        def get_milvus_executable_path(self) -> str:
            return str(launcher)

    config = milvus.MilvusServerConfig(data_dir=str(data_dir))
    for key, value in TUNING.items():
        config.set(key, value)
    etcd_port = free_port()
    config.set("etcd_port", etcd_port)
    env = {**ENV, "ETCD_CONFIG_PATH": str(_etcd_config(data_dir, etcd_port))}
    server: Any = BenchServer(config, wait_for_started=False)
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)  # start() copies os.environ for the child
    try:
        server.start()
    finally:
        for name, before in saved.items():
            if before is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = before
    try:
        while not _healthy(server.webservice_port):
            proc = server.server_proc
            if proc is None or proc.poll() is not None or time.monotonic() > deadline:
                raise ServerUnavailable(
                    f"the embedded Milvus server did not start (logs in {data_dir}):\n"
                    f"{_log_tail(data_dir)}"
                )
            time.sleep(0.2)
        uri = f"http://127.0.0.1:{server.listen_port}"
        while True:
            try:
                MilvusStore(uri, "probe", connect_timeout=2.0).close()
                break
            except StoreUnavailableError as exc:
                if time.monotonic() > deadline:
                    raise ServerUnavailable(
                        f"the embedded Milvus server never accepted clients ({exc})"
                    ) from exc
                time.sleep(0.5)
        yield uri
    finally:
        server.stop()
