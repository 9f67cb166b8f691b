"""mmrag's own OS lock on a Milvus Lite file: one process uses a ``.db`` at a time.

Milvus Lite 2.5.1 guards a file with ``lockf`` on ``.<db>.lock``, but a refused ``Server``
object unlinks that lock file when it is collected, while the owner still holds its lock on the
unlinked inode: the next process creates a new lock file, locks it, and opens the database beside
the owner (two writers, lost and duplicated rows). So before Milvus Lite starts, mmrag takes its
own lock:

* ``flock`` on ``.<db>.mmrag.lock`` beside the file (``lock_path``); the lock file is never
  deleted, so every process locks the same inode;
* one open file description per process and file, counted per store (``hold``/``release``), so
  the stores of one process share it and it is released only when the last one closes (and a
  reconnect keeps it across its reopen: ``kept_across``);
* closing it releases the lock, and so does the kernel when the process dies: a SIGKILLed owner
  never blocks the next command;
* the lock file holds the owner's pid and command, which a refused process names
  (``LiteFileBusyError``);
* before this process starts Milvus Lite on a file, it waits (up to ``LEFTOVER_WAIT_S``) for a
  Milvus Lite server left by a killed owner to exit (``wait_for_leftover_servers``).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil

from retrieval.errors import StoreUnavailableError

LEFTOVER_WAIT_S = 10.0  # a killed owner's Milvus Lite server exits within about a second
_POLL_S = 0.05
_MAX_OWNER_BYTES = 4096
_LITE_BINARY = "milvus"  # milvus_lite/lib/milvus, started with the .db path as its argument
_FLAGS = frozenset({"--verbose", "--version", "--help"})  # global options without a value


@dataclass(frozen=True)
class LockOwner:
    """The process holding a Lite file's lock, as its lock file records it."""

    pid: int | None
    command: str


class LiteFileBusyError(StoreUnavailableError):
    """Another process uses this Milvus Lite file (``owner`` says which, when it is known)."""

    def __init__(self, message: str, *, db: Path, owner: LockOwner) -> None:
        super().__init__(message)
        self.db = db
        self.owner = owner


@dataclass
class _Held:
    fd: int
    users: int


_registry_lock = threading.Lock()
_held: dict[Path, _Held] = {}  # Lite files this process has locked -> fd and users


def lock_path(db: Path) -> Path:
    """The lock file of a Lite database: ``.<name>.mmrag.lock`` in its folder."""
    return db.parent / f".{db.name}.mmrag.lock"


def hold(db: Path) -> None:
    """Take (or share, within this process) the lock on ``db``; LiteFileBusyError when another
    process holds it, StoreUnavailableError when the lock file cannot be created."""
    db = db.resolve()
    with _registry_lock:
        held = _held.get(db)
        if held is not None:
            held.users += 1
            return
        fd = _open_lock_file(db)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            owner = _read_owner(fd)
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise LiteFileBusyError(busy_message(db, owner), db=db, owner=owner) from exc
            raise StoreUnavailableError(
                f"cannot lock {lock_path(db)}: {exc.strerror}; check the folder's file system "
                "supports locks, or use a Milvus Lite file on a local disk"
            ) from exc
        _write_owner(fd)
        _held[db] = _Held(fd=fd, users=1)


def release(db: Path) -> None:
    """Drop one use of the lock on ``db``; the last one clears the owner and unlocks."""
    db = db.resolve()
    with _registry_lock:
        held = _held.get(db)
        if held is None:
            return
        held.users -= 1
        if held.users > 0:
            return
        del _held[db]
        with contextlib.suppress(OSError):
            os.ftruncate(held.fd, 0)  # still locked: no reader sees a stale owner
        os.close(held.fd)  # releases the flock


def holds(db: Path) -> bool:
    """Whether this process holds the lock on ``db``."""
    with _registry_lock:
        return db.resolve() in _held


def recorded_owner(db: Path) -> LockOwner:
    """The owner the lock file of ``db`` records (pid None: no lock file, or no owner in it);
    a process that dies holding the lock leaves its pid there."""
    try:
        fd = os.open(lock_path(db.resolve()), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return LockOwner(pid=None, command="")
    try:
        return _read_owner(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def kept_across(uri: str) -> Iterator[None]:
    """Keep this process's lock on a Lite URI's file while the block closes and reopens its
    stores (a no-op for a server URL, or when another process owns the file: the reopen then
    reports it)."""
    from retrieval.stores import is_local_uri
    from retrieval.stores.milvus_rows import lite_path

    if not is_local_uri(uri.strip()):
        yield
        return
    db = lite_path(uri.strip())
    try:
        hold(db)
    except StoreUnavailableError:
        yield
        return
    try:
        yield
    finally:
        release(db)


def wait_for_leftover_servers(db: Path, timeout_s: float = LEFTOVER_WAIT_S) -> None:
    """Wait until no Milvus Lite server process has ``db`` open (one left by a killed owner
    exits once the owner's lock is gone); LiteFileBusyError naming it if one stays."""
    db = db.resolve()
    deadline = time.monotonic() + timeout_s
    while True:
        pids = lite_server_pids(db)
        if not pids:
            return
        if time.monotonic() >= deadline:
            owner = LockOwner(pid=pids[0], command="a Milvus Lite server")
            raise LiteFileBusyError(
                f"a Milvus Lite server (pid {pids[0]}) still has {db} open although no mmrag "
                f"process owns it (left by a program that stopped, or one not run through "
                f"mmrag); stop that program, or end the server with `kill {pids[0]}`, then "
                "run the command again",
                db=db,
                owner=owner,
            )
        time.sleep(_POLL_S)


def lite_server_pids(db: Path) -> list[int]:
    """Pids of live Milvus Lite server processes serving ``db`` that this process did not start
    (zombies excluded): one this process started, e.g. through the user's own pymilvus client,
    is the server Milvus Lite shares with every client of this process, not a leftover."""
    wanted = str(db.resolve())
    me = os.getpid()
    pids = []
    for proc in psutil.process_iter(["name", "cmdline", "status", "ppid"]):
        info = proc.info
        cmdline = info.get("cmdline") or []
        if info.get("status") == psutil.STATUS_ZOMBIE or len(cmdline) < 2:
            continue
        if info.get("ppid") == me:
            continue
        if os.path.basename(cmdline[0]) == _LITE_BINARY and cmdline[1] == wanted:
            pids.append(proc.pid)
    return sorted(pids)


def busy_message(db: Path, owner: LockOwner) -> str:
    """The refusal for a file another process owns: who, and what to do."""
    if owner.pid is None:
        who = "another process"
    else:
        who = f"{owner.command or 'another process'} (pid {owner.pid})"
    return (
        f"{who} owns the Milvus Lite file {db} (Milvus Lite lets one process use a file, so "
        "another process cannot open it beside the owner); stop it and run this command "
        "again, or use another .db file (or a Milvus server) for this work (a `mmrag serve` "
        "listening on loopback or on all addresses runs other commands on its file itself)"
    )


def process_command(argv: list[str] | None = None) -> str:
    """How this process is known to users: ``mmrag serve``, ``python script.py``, ..."""
    args = list(sys.argv if argv is None else argv)
    program = Path(args[0]) if args and args[0] not in ("", "-c") else None
    if program is None:
        return "a Python process"
    if program.name == "__main__.py":  # python -m mmrag
        program = Path(program.parent.name or "python")
    if program.name != "mmrag":
        return program.name
    command = _subcommand(args[1:])
    return f"mmrag {command}" if command else "mmrag"


def _subcommand(args: list[str]) -> str | None:
    """The first word of an mmrag command line that is not an option or an option's value."""
    previous = ""
    for arg in args:
        if not arg.startswith("-"):
            takes_value = previous.startswith("--") and "=" not in previous
            if not takes_value or previous in _FLAGS:
                return arg
        previous = arg
    return None


def _open_lock_file(db: Path) -> int:
    """Open (creating) the lock file beside ``db``."""
    path = lock_path(db)
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise StoreUnavailableError(
            f"cannot create the lock file {path} beside the Milvus Lite file: {exc.strerror}; "
            "use a folder this user can write to"
        ) from exc


def _write_owner(fd: int) -> None:
    """Record this process as the owner (pid, then command) in the locked file."""
    text = f"{os.getpid()}\n{process_command()}\n".encode("utf-8", "replace")
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, text[:_MAX_OWNER_BYTES], 0)
    except OSError:
        pass  # the lock is what matters; a refused process then names "another process"


def _read_owner(fd: int) -> LockOwner:
    """The owner a lock file records (pid None when it says nothing usable)."""
    try:
        text = os.pread(fd, _MAX_OWNER_BYTES, 0).decode("utf-8", "replace")
    except OSError:
        text = ""
    lines = text.splitlines()
    pid = int(lines[0]) if lines and lines[0].strip().isdigit() else None
    command = lines[1].strip() if len(lines) > 1 and pid is not None else ""
    return LockOwner(pid=pid, command=command)
