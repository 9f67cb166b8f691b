"""Why a Milvus Lite file would not open: a file that is not a Lite database, another process
owning it, or a Lite process that did not answer in time (a start-up timeout).

Milvus Lite keeps its data in an SQLite file and lets one process own it; its own error says
neither, so the store asks here after a failed start and names the likely cause. (The lock is
not probed: a POSIX lock taken and released here would drop one this process holds.)
"""

from __future__ import annotations

from pathlib import Path

SQLITE_MAGIC = b"SQLite format 3\x00"


def is_foreign_file(db: Path) -> bool:
    """Whether ``db`` exists with content that is not an SQLite database (so not Milvus Lite's)."""
    try:
        with open(db, "rb") as handle:
            head = handle.read(len(SQLITE_MAGIC))
    except OSError:
        return False  # missing or unreadable: Lite creates it, or its error says why
    return bool(head) and head != SQLITE_MAGIC


def open_failure(db: Path, error: str) -> str:
    """The message for a Lite file that would not open, naming the likely cause."""
    if is_foreign_file(db):
        return (
            f"cannot open {db}: it is not a Milvus Lite database (not an SQLite file: corrupted, "
            "or another kind of file). Restore it from a backup, or move it away and ingest "
            f"again to create a new one ({error})"
        )
    return (
        f"cannot open Milvus Lite file {db} (Milvus Lite lets one process own a file; is "
        f"another process using it?): {error}"
    )


def start_timeout(db: Path, seconds: float, error: str, state: str = "") -> str:
    """The message for a Lite process that started but did not answer in time (``state``:
    what became of its process, when known)."""
    known = f"; {state}" if state else ""
    return (
        f"Milvus Lite for {db} did not answer within {seconds:g} s of starting (a start-up "
        f"timeout: the machine may be busy{known}). Try again, or allow it longer with "
        f"MMRAG_LITE_START_TIMEOUT_S=SECONDS ({error})"
    )
