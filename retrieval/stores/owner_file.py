"""The owner file of a served Milvus Lite file: how other commands find the server that owns it.

``mmrag serve`` on a Lite file holds mmrag's lock on it (``lite_lock``), so no other process may
open the file. Once it listens, it writes ``.<name>.db.owner.json`` beside the file (created
0600, atomically, readable only by its user): the server's loopback URL, a random token, its pid
and the file's path. Another command on the same file reads it and works through the server
(``stores/owner.py``); the server removes it on a clean shutdown.

An owner file is trusted only while it still describes the owner: written by this user, 0600,
naming this file, its pid alive and recorded in the lock file as the lock's holder, and never
this very process. Anything else (a killed server's leftover, a file written by someone else) is
ignored, so the next command opens the file itself as before.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import psutil

from retrieval.stores import lite_lock

_MAX_BYTES = 4096
_published: set[Path] = set()  # Lite files this process serves to other commands


@dataclass(frozen=True)
class OwnerRecord:
    """What the owning server published: where it answers and the token it accepts."""

    url: str  # http://127.0.0.1:PORT (loopback)
    token: str
    pid: int
    db: Path  # the resolved Lite file


def owner_path(db: Path) -> Path:
    """The owner file of a Lite database: ``.<name>.owner.json`` in its folder."""
    return db.parent / f".{db.name}.owner.json"


def loopback_url(host: str, port: int) -> str | None:
    """The URL a command on this machine reaches a server listening on ``host`` at (None: it
    listens on another address only, which a loopback client cannot reach)."""
    import ipaddress

    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    if address.is_unspecified:  # 0.0.0.0 or ::
        address = ipaddress.ip_address("127.0.0.1" if address.version == 4 else "::1")
    if not address.is_loopback:
        return None
    text = f"[{address}]" if address.version == 6 else str(address)
    return f"http://{text}:{port}"


def publish(record: OwnerRecord) -> Path:
    """Write the owner file atomically (0600; an older one, e.g. a killed server's, replaced)."""
    path = owner_path(record.db)
    text = json.dumps(
        {"url": record.url, "token": record.token, "pid": record.pid, "db": str(record.db)}
    )
    temp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        temp.unlink()
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, text.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, path)
    _published.add(record.db)
    return path


def withdraw(record: OwnerRecord) -> None:
    """Remove the owner file if it is still this record's (a newer owner's file stays)."""
    _published.discard(record.db)
    path = owner_path(record.db)
    current = _read(path)
    if current is not None and current.token == record.token:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def is_published(db: Path) -> bool:
    """Whether this process serves ``db`` to other commands (an owner file it wrote)."""
    return db.resolve() in _published


def live_owner(db: Path) -> OwnerRecord | None:
    """The owner record of ``db`` when another live process of this user holds its lock and
    published it; None otherwise (no server, or a stale or foreign file: open the file itself)."""
    db = db.resolve()
    record = _read(owner_path(db))
    if record is None or record.db != db or record.pid == os.getpid():
        return None
    if lite_lock.holds(db) or not psutil.pid_exists(record.pid):
        return None
    if lite_lock.recorded_owner(db).pid != record.pid:
        return None  # the lock is free, or held by another process than the one that wrote it
    return record


def _read(path: Path) -> OwnerRecord | None:
    """The record in an owner file this user wrote with mode 0600 (None: absent or not valid)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
            return None
        if stat.S_IMODE(info.st_mode) & 0o077:
            return None
        raw = os.read(fd, _MAX_BYTES)
    finally:
        os.close(fd)
    try:
        data = json.loads(raw.decode("utf-8"))
        record = OwnerRecord(
            url=str(data["url"]), token=str(data["token"]), pid=int(data["pid"]),
            db=Path(str(data["db"])),
        )
    except (ValueError, KeyError, TypeError):
        return None
    if not record.url.startswith("http://") or not record.token:
        return None
    return record
