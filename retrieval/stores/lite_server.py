"""Milvus Lite's server process for one file, started with a scratch folder of its own.

Milvus Lite 2.5.1's process keeps its scratch files in ``$HOME/.cache/milvus``: it deletes and
recreates that folder when it makes its first collection and deletes it again when it exits.
Every Lite process of a user shares the folder, so two of them doing that at once (a server and
an ingest on two files, two test workers, one command exiting while another starts) make the
loser fail every collection call with ``Mmap manager has not been init`` until it restarts.
(Measured here: 4 processes creating a collection at the same moment, 8 failures in 32.)

mmrag starts each Lite process itself with ``HOME`` set to a private temporary folder, removed
when the server stops, and registers it with milvus_lite's server manager, so pymilvus'
``MilvusClient`` connects to it as to a server it started itself. Its glog files go there too
(milvus_lite leaves one in /tmp per process).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TextIO

from milvus_lite.server import Server
from milvus_lite.server_manager import server_manager_instance

STARTUP_CHECK_S = 0.5  # as milvus_lite: a process still running after this has started


class IsolatedLiteServer(Server):
    """milvus_lite's ``Server`` with a private ``HOME``; a refused start leaves the owner's
    lock file in place (milvus_lite's own ``stop`` unlinks it even when another holds it)."""

    def __init__(self, db_file: str) -> None:
        super().__init__(db_file)
        self._home = tempfile.mkdtemp(prefix="mmrag-lite-home-")
        self._locked = False
        self._lock_fd: TextIO | None = None

    def start(self) -> bool:
        """Lock the file as milvus_lite does, then start the server with the private HOME."""
        self._lock_fd = open(self._lock_path, "a")  # noqa: SIM115  # closed in stop()
        try:
            fcntl.lockf(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        self._locked = True
        self._p = subprocess.Popen(
            args=self.args, env=lite_environment(self._bin_path, Path(self._home)),
            cwd=str(self._work_dir),
        )
        try:
            self._p.wait(STARTUP_CHECK_S)
        except subprocess.TimeoutExpired:
            return True
        return False

    def stop(self) -> None:
        """Stop the process and remove the scratch folder; files are unlinked only by the
        process that held the lock."""
        if self._locked:
            super().stop()
            self._locked = False
        elif self._lock_fd is not None:
            self._lock_fd.close()
            self._lock_fd = None
        shutil.rmtree(self._home, ignore_errors=True)


def lite_environment(bin_path: Path, home: Path) -> dict[str, str]:
    """This process's environment for the Lite binary: its libraries first, ``HOME`` and the
    log folder private (errors still go to stderr)."""
    env = dict(os.environ)
    for name in ("LD_LIBRARY_PATH", "DYLD_LIBRARY_PATH"):
        env[name] = f"{bin_path}:{os.environ.get('LD_LIBRARY_PATH', '')}"
    env["HOME"] = str(home)
    env["GLOG_log_dir"] = str(home)  # its INFO log file, else one per process left in /tmp
    return env


def server_key(db: Path) -> str:
    """The name milvus_lite's server manager keeps a file's server under (its resolved path)."""
    return str(db.absolute().resolve())


def running_lite_server(db: Path) -> Server | None:
    """The Lite server this process runs for ``db`` (started by mmrag or by pymilvus), if any."""
    server: Server | None = server_manager_instance._servers.get(server_key(db))
    return server


def start_lite_server(db: Path) -> None:
    """Start an isolated Lite server for ``db`` unless this process already runs one.

    A start that fails (another process holds the file, or the binary exits at once) leaves
    nothing registered: pymilvus' own start then reports it as milvus_lite always has.
    """
    key = server_key(db)
    manager = server_manager_instance
    with manager._lock:
        if key in manager._servers:
            return
        server = IsolatedLiteServer(key)
        if server.init() and server.start():
            manager._servers[key] = server
            return
        server.stop()


def lite_process_state(db: Path) -> str:
    """What became of the Lite process this process started for ``db``, for a start-up error:
    still running (slow, or stuck), or exited with its code; '' when none was started here."""
    process = getattr(running_lite_server(db), "_p", None)
    if not isinstance(process, subprocess.Popen):
        return ""
    code = process.poll()
    if code is None:
        return f"its process (pid {process.pid}) is still running"
    return f"its process (pid {process.pid}) exited with code {code}"
