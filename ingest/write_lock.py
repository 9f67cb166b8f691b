"""Exact counts when several ingests write to one Milvus server collection at once.

Each job checks ids against the store before reading, but two jobs started together both find
an item missing, both write it (an upsert: still one row) and both count it as ingested. So a job
writing to a server takes a lock per collection before each write, looks the batch's ids up
again under it, and writes (and counts as ingested) only those still missing; the others are
duplicates. Milvus queries are Strong by default, so a row another job wrote before releasing the
lock is seen. The lock is an ``flock`` on a file under ``<tmp>/mmrag-<uid>/ingest-locks``, keyed
by the server address and the concrete collection: it covers the ingests of one user on one
machine (ingests on other machines should split the work with ``--shard``). A Milvus Lite file has
a single writing process, so it needs neither lock nor second look-up, unless ``mmrag serve`` owns
it: then commands write through the server and the server writes too
(``Capabilities.shared_writers``), and they all take the same lock.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

from retrieval.stores.base import VectorStore

try:
    import fcntl
except ImportError:  # Windows: the lock covers the threads of this process only
    fcntl = None  # type: ignore[assignment]


def lock_path(where: str, collection: str) -> Path:
    """The lock file of one server collection for this user."""
    digest = hashlib.sha256(f"{where}\0{collection}".encode("utf-8", "replace")).hexdigest()
    user = getattr(os, "getuid", lambda: "user")()
    return Path(tempfile.gettempdir()) / f"mmrag-{user}" / "ingest-locks" / f"{digest[:32]}.lock"


class WriteGuard:
    """Serializes "look the ids up, then write" for a collection with several writers (a no-op
    for a Lite file only one process writes)."""

    def __init__(self, store: VectorStore, path: Path | None) -> None:
        self.store = store
        self.path = path
        self._threads = threading.Lock()
        self._handle: IO[bytes] | None = None
        if path is not None:
            path.parent.parent.mkdir(mode=0o700, exist_ok=True)
            path.parent.mkdir(mode=0o700, exist_ok=True)
            self._handle = path.open("ab")

    @classmethod
    def for_store(cls, store: VectorStore) -> WriteGuard:
        """A guard for the store's concrete collection; without a lock where one process
        writes (a Milvus Lite file no server shares). The key is the store's location and
        concrete collection, the same for a server's own store and a command writing through
        it."""
        if not store.capabilities.shared_writers:
            return cls(store, None)
        return cls(store, lock_path(store.where, store.resolve()))

    def stored(self, ids: Sequence[str]) -> set[str]:
        """The ids another writer stored meanwhile (always none with a single writer)."""
        if self.path is None or not ids:
            return set()
        return self.store.existing_ids(ids)

    def __enter__(self) -> WriteGuard:
        self._threads.acquire()
        if self._handle is not None and fcntl is not None:
            try:
                fcntl.flock(self._handle.fileno(), fcntl.LOCK_EX)
            except BaseException:
                self._threads.release()
                raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._handle is not None and fcntl is not None:
                fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
        finally:
            self._threads.release()

    def close(self) -> None:
        """Close the lock file (releasing the lock if held)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
