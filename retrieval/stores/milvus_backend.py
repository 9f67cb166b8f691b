"""Milvus Lite or a Milvus server: every difference between the two, chosen once at connect time.

``backend_for(uri)`` picks ``LiteBackend`` for a ``.db`` path and ``ServerBackend`` for a URL.
The store asks its backend how to connect and disconnect, how names and aliases resolve
(``milvus_names``), which index types exist, how checked-new rows are written, how large a
write call may be, and whether there is an index build to wait for; it never asks which
backend it has.
"""

from __future__ import annotations

import os
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import grpc
from pymilvus import MilvusClient
from pymilvus.exceptions import ConnectionConfigException, MilvusException

from retrieval.errors import CollectionNotFoundError, ConfigError, StoreUnavailableError
from retrieval.stores import is_local_uri, lite_lock
from retrieval.stores.base import Capabilities
from retrieval.stores.existing import missing_collection_message
from retrieval.stores.milvus_errors import CONNECT_FAILED, translate
from retrieval.stores.milvus_lite_files import open_failure, start_timeout
from retrieval.stores.milvus_names import Call, LiteNames, Names, ServerNames
from retrieval.stores.milvus_rows import (
    lite_path,
    redact_uri,
    resolve_index_type,
    upsert_batch_bytes,
)

# Under load (2 busy cores) a Milvus Lite process can take well over 10 s to answer; a file
# owned by another process fails at once whatever the wait.
LITE_START_TIMEOUT_S = 60.0
META_TTL_S = 2.0  # an unpinned server store re-reads its collection (an alias may have moved)

_lite_lock = threading.Lock()
_lite_users: dict[str, int] = {}  # Lite files this process serves -> stores using each
_lite_borrowed: set[str] = set()  # Lite servers the user's own pymilvus client started
# Per file: a store's start (or share) of its Lite server and the last store's stop of it
# happen one at a time, so an opener is never handed a server that is being stopped.
_lite_lifecycles: dict[str, threading.RLock] = {}


@dataclass(frozen=True)
class MilvusBackend(ABC):
    """What differs between Milvus Lite and a Milvus server, for one URI."""

    address: str  # what pymilvus connects to: the resolved .db path, or the server URL
    where: str  # the address for messages (never a password)

    label: ClassVar[str]  # for messages: "Milvus Lite" or "a Milvus server"
    embedded: ClassVar[bool]  # the data is a local file served by this process's Lite server
    add_method: ClassVar[str]  # the client call that writes rows checked to be new
    # How long an unpinned store trusts what it read about its collection (None: until
    # refresh(); a Lite name is resolved by this process, a server alias moves on its own).
    meta_max_age_s: ClassVar[float | None]
    waits_for_index: ClassVar[bool]  # whether searches go through an index built after flush

    @property
    def capabilities(self) -> Capabilities:
        """This backend's part of the store contract."""
        return Capabilities(
            embedded=self.embedded, alias_shadows_collection=self.embedded,
            shared_writers=self.shared_writers,
        )

    @property
    def shared_writers(self) -> bool:
        """Whether other processes may write the same collection meanwhile."""
        return not self.embedded

    def index_type(self, wanted: str) -> str:
        """The concrete index type for ``wanted`` (``auto`` or a name), or a ConfigError."""
        return resolve_index_type(wanted, local=self.embedded)

    def batch_bytes(self) -> int:
        """Bytes per write call (read at call time, so the bench and tests can tune it)."""
        return upsert_batch_bytes(self.embedded)

    @abstractmethod
    def require_data(self, collection: str) -> None:
        """Before a read-only open: raise CollectionNotFoundError when there is no data to open."""

    @abstractmethod
    def connect(self, token: str | None, timeout: float) -> MilvusClient:
        """Open a dedicated client."""

    @abstractmethod
    def disconnect(self, client: MilvusClient) -> None:
        """Close a client opened by ``connect``."""

    @abstractmethod
    def names(self, call: Call, timeout: float, slow_timeout: float) -> Names:
        """How names, aliases and renames work here, through the store's calls."""


@dataclass(frozen=True)
class ServerBackend(MilvusBackend):
    """A Milvus server reached over gRPC."""

    label: ClassVar[str] = "a Milvus server"
    embedded: ClassVar[bool] = False
    # Servers may have concurrent writers (shards, Ray), so checked-new rows keep upsert's
    # replace-by-id.
    add_method: ClassVar[str] = "upsert"
    meta_max_age_s: ClassVar[float | None] = META_TTL_S
    waits_for_index: ClassVar[bool] = True

    def connect(self, token: str | None, timeout: float) -> MilvusClient:
        """Open a dedicated client to the server."""
        try:
            return MilvusClient(
                uri=self.address, token=token or "", timeout=timeout, dedicated=True
            )
        except (MilvusException, grpc.RpcError) as exc:
            raise translate(exc, "connect", self.where) from exc

    def require_data(self, collection: str) -> None:
        """Nothing to check before connecting: a server's collections are checked after."""

    def disconnect(self, client: MilvusClient) -> None:
        """Close the client."""
        client.close()

    def names(self, call: Call, timeout: float, slow_timeout: float) -> Names:
        """The server's own aliases and renames."""
        return ServerNames(call, timeout, slow_timeout)


@dataclass(frozen=True)
class LiteBackend(MilvusBackend):
    """A Milvus Lite file, served by a process this one starts and shares between its stores."""

    db: Path

    label: ClassVar[str] = "Milvus Lite"
    embedded: ClassVar[bool] = True
    # Lite 2.5.1 runs every upsert call as a full-table-scan delete first, and one Lite file
    # has one writing process, so checked-new rows are plainly inserted (see MilvusStore.add).
    add_method: ClassVar[str] = "insert"
    meta_max_age_s: ClassVar[float | None] = None
    waits_for_index: ClassVar[bool] = False  # Lite searches its data directly

    def require_data(self, collection: str) -> None:
        """A missing file (or folder) is reported before Milvus Lite would create it."""
        if not self.db.is_file():
            raise CollectionNotFoundError(missing_collection_message(collection, self.where, None))

    def connect(self, token: str | None, timeout: float) -> MilvusClient:
        """Start (or share) the Lite server process for the file and open a client to it."""
        self.db.parent.mkdir(parents=True, exist_ok=True)
        _import_milvus_lite()
        timeout = lite_start_timeout_s()  # not the server's connect timeout: a loaded machine
        # starts Lite slowly, and a file another process owns fails at once anyway
        lite_lock.hold(self.db)  # mmrag's own OS lock, taken before Milvus Lite starts
        with _lite_lifecycle(self.address):
            return self._start_or_share(token, timeout)

    def _start_or_share(self, token: str | None, timeout: float) -> MilvusClient:
        """Count this store as a user of the file's Lite server, starting it if none runs."""
        with _lite_lock:  # counted before connecting, so a closing store cannot stop it
            starting = self.address not in _lite_users
            _lite_users[self.address] = _lite_users.get(self.address, 0) + 1
        try:
            if starting:
                lite_lock.wait_for_leftover_servers(self.db)  # one a killed owner left
                if not _note_borrowed_lite(self.address):
                    from retrieval.stores.lite_server import start_lite_server

                    start_lite_server(self.db)  # with a scratch HOME of its own
            return MilvusClient(
                uri=self.address, token=token or "", timeout=timeout, dedicated=True
            )
        except (MilvusException, grpc.RpcError) as exc:
            from retrieval.stores.lite_server import lite_process_state

            err = translate(exc, "connect", self.where)
            state = lite_process_state(self.db)  # before it is stopped below
            # ConnectionConfigException: Lite never started (e.g. another process owns it).
            never_started = isinstance(exc, ConnectionConfigException)
            _release_lite(self.address, stop=not never_started)
            lite_lock.release(self.db)
            if not never_started and getattr(exc, "code", None) == CONNECT_FAILED:
                raise StoreUnavailableError(
                    start_timeout(self.db, timeout, str(err), state)
                ) from exc
            raise StoreUnavailableError(open_failure(self.db, str(err))) from exc
        except StoreUnavailableError:
            _release_lite(self.address, stop=False)
            lite_lock.release(self.db)
            raise

    def disconnect(self, client: MilvusClient) -> None:
        """Close the client; stop the Lite process when no store of this process uses it."""
        try:
            client.close()
            _release_lite(self.address, stop=True)
        finally:
            lite_lock.release(self.db)  # after Lite stopped: the next owner finds it gone

    @property
    def shared_writers(self) -> bool:
        """While this process serves the file to other commands (it published an owner file),
        they write through it too."""
        from retrieval.stores.owner_file import is_published

        return is_published(self.db)

    def names(self, call: Call, timeout: float, slow_timeout: float) -> Names:
        """Aliases in a pointer file beside the ``.db``; no renames."""
        return LiteNames(self.db, call, timeout)


def lite_start_timeout_s() -> float:
    """Seconds a Milvus Lite process may take to answer after it starts (read at each connect:
    ``MMRAG_LITE_START_TIMEOUT_S``, default ``LITE_START_TIMEOUT_S``)."""
    text = os.environ.get("MMRAG_LITE_START_TIMEOUT_S", "").strip()
    if not text:
        return LITE_START_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise ConfigError(f"MMRAG_LITE_START_TIMEOUT_S must be a positive number of seconds, "
                          f"not {text!r}")
    return value


def backend_for(uri: str) -> MilvusBackend:
    """``LiteBackend`` for a ``.db`` path (checked and resolved), else ``ServerBackend``."""
    uri = uri.strip()
    if is_local_uri(uri):
        path = lite_path(uri)
        return LiteBackend(address=str(path), where=str(path), db=path)
    return ServerBackend(address=uri, where=redact_uri(uri))


def _import_milvus_lite() -> None:
    """Import milvus_lite (its pkg_resources warning is the application's to show or hide:
    mmrag.logs hides it unless -v)."""
    import milvus_lite.server_manager  # noqa: F401


def _note_borrowed_lite(path: str) -> bool:
    """Remember a Lite server this process already ran before mmrag's first store on it (the
    user's own pymilvus client started it): mmrag shares it and never stops it. True if so."""
    from retrieval.stores.lite_server import running_lite_server

    running = running_lite_server(Path(path)) is not None
    with _lite_lock:
        if running:
            _lite_borrowed.add(path)
        else:
            _lite_borrowed.discard(path)
    return running


def _lite_lifecycle(path: str) -> threading.RLock:
    """The lock under which this process starts and stops the Lite server of ``path``."""
    with _lite_lock:
        return _lite_lifecycles.setdefault(path, threading.RLock())


def _release_lite(path: str, *, stop: bool) -> None:
    """Drop one user of a Milvus Lite file; stop its process when none is left (unless the
    process was borrowed from the user's own client)."""
    with _lite_lifecycle(path):
        _drop_user(path, stop=stop)


def _drop_user(path: str, *, stop: bool) -> None:
    """``_release_lite`` under the file's lifecycle lock."""
    from milvus_lite.server_manager import server_manager_instance

    with _lite_lock:
        users = _lite_users.get(path, 0) - 1
        if users > 0:
            _lite_users[path] = users
            return
        _lite_users.pop(path, None)
        if path in _lite_borrowed:
            _lite_borrowed.discard(path)
            return
    if stop:
        server_manager_instance.release_server(path)
