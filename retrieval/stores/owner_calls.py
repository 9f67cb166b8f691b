"""The owner's side of the protocol: a forwarded VectorStore call run on the server's store.

``CALLS`` maps each method of the contract to a function of (store, JSON arguments) returning
a JSON value; ``stores/owner.py`` is its client. ``OwnerSessions`` keeps one store per client
store (its own pinned target and name, as if the client had opened the file itself), at most
``MAX_SESSIONS``; one idle for ``SESSION_IDLE_S`` (a client killed before it closed) is closed.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from retrieval.errors import ConfigError, MmragError, StoreUnavailableError
from retrieval.stores.base import VectorStore
from retrieval.stores.owner_wire import (
    decode_array,
    decode_fusion,
    decode_record,
    encode_capabilities,
    encode_error,
    encode_hit,
    encode_info,
    encode_record,
    encode_target,
)
from retrieval.types import Hit

MAX_SESSIONS = 64
SESSION_IDLE_S = 600.0

Args = dict[str, Any]


def _records(args: Args) -> list[Any]:
    return [decode_record(item) for item in args["records"]]


def _hits(found: list[list[Hit]]) -> list[list[dict[str, Any]]]:
    return [[encode_hit(hit) for hit in hits] for hits in found]


CALLS: dict[str, Callable[[VectorStore, Args], Any]] = {
    "capabilities": lambda s, a: encode_capabilities(s.capabilities),
    "ensure_collection": lambda s, a: s.ensure_collection(
        int(a["dim"]), str(a["model_id"]), spec=a.get("spec"),
        text_columns=a.get("text_columns"),
    ),
    "list_collections": lambda s, a: s.list_collections(),
    "exists": lambda s, a: s.exists(),
    "info": lambda s, a: encode_info(s.info()),
    "upsert": lambda s, a: s.upsert(_records(a)),
    "add": lambda s, a: s.add(_records(a)),
    "flush": lambda s, a: s.flush(),
    "existing_ids": lambda s, a: sorted(s.existing_ids([str(i) for i in a["ids"]])),
    "search": lambda s, a: _hits(s.search(
        decode_array(a["vectors"]), int(a["k"]), offset=int(a["offset"]), expr=a.get("expr"),
        with_vectors=bool(a["with_vectors"]),
    )),
    "has_text_index": lambda s, a: s.has_text_index(),
    "text_columns": lambda s, a: list(s.text_columns()),
    "keyword_search": lambda s, a: _hits(s.keyword_search(
        [str(t) for t in a["texts"]], int(a["k"]), offset=int(a["offset"]), expr=a.get("expr"),
    )),
    "hybrid_search": lambda s, a: _hits(s.hybrid_search(
        decode_array(a["vectors"]), [str(t) for t in a["texts"]], int(a["k"]),
        offset=int(a["offset"]), expr=a.get("expr"), fusion=decode_fusion(a["fusion"]),
    )),
    "range_search": lambda s, a: _hits(s.range_search(
        decode_array(a["vectors"]), float(a["radius"]), limit=int(a["limit"]),
        expr=a.get("expr"),
    )),
    "delete_where": lambda s, a: s.delete_where(str(a["expr"])),
    "get": lambda s, a: [
        encode_record(r)
        for r in s.get([str(i) for i in a["ids"]], with_vectors=bool(a["with_vectors"]))
    ],
    "delete": lambda s, a: s.delete([str(i) for i in a["ids"]]),
    "count": lambda s, a: s.count(),
    "drop": lambda s, a: s.drop(),
    "wait_until_indexed": lambda s, a: s.wait_until_indexed(
        float(a["timeout"]), float(a["poll"])
    ),
    "describe_target": lambda s, a: encode_target(s.describe_target()),
    "model_spec": lambda s, a: s.model_spec(),
    "resolve": lambda s, a: s.resolve(),
    "refresh": lambda s, a: s.refresh(),
    "set_alias": lambda s, a: s.set_alias(str(a["alias"])),
    "create_alias": lambda s, a: s.create_alias(str(a["alias"])),
    "alter_alias": lambda s, a: s.alter_alias(str(a["alias"])),
    "describe_alias": lambda s, a: s.describe_alias(str(a["alias"])),
    "drop_alias": lambda s, a: s.drop_alias(str(a["alias"])),
    "list_aliases": lambda s, a: s.list_aliases(),
    "rename": lambda s, a: s.rename(str(a["new_name"])),
}


def run_call(store: VectorStore, method: str, args: Args) -> dict[str, Any]:
    """``{"value": ..., "collection": ...}`` of one call, or ``{"error": ...}`` (mmrag errors
    only: anything else is the server's bug, answered as a 500 by the API's handlers)."""
    call = CALLS.get(method)
    if call is None:
        return encode_error(ConfigError(
            f"this mmrag server cannot run {method!r} for another command; update the server "
            "to the same mmrag version as the command"
        ))
    try:
        value = call(store, args)
    except MmragError as exc:
        return encode_error(exc)
    return {"value": value, "collection": store.collection}


def iterate_lines(store: VectorStore, args: Args) -> Iterator[Any]:
    """The batches of ``iterate`` (or ``iterate_where`` with an ``expr``) as wire values; an
    error ends the stream as ``{"error": ...}``."""
    batch_size = int(args.get("batch_size", 1000))
    with_vectors = bool(args.get("with_vectors", True))
    expr = args.get("expr")
    try:
        if expr is None:
            batches = store.iterate(batch_size, with_vectors=with_vectors)
        else:
            batches = store.iterate_where(str(expr), batch_size, with_vectors=with_vectors)
        for batch in batches:
            yield [encode_record(record) for record in batch]
    except MmragError as exc:
        yield encode_error(exc)


@dataclass
class _Session:
    store: VectorStore
    used: float


class OwnerSessions:
    """The stores opened for client stores, by session id (thread-safe)."""

    def __init__(self, opener: Callable[[str, str], VectorStore]) -> None:
        self._opener = opener  # (collection, index type) -> a store on the owned file
        self._sessions: dict[str, _Session] = {}
        self._lock = threading.Lock()

    def open(self, collection: str, index_type: str) -> tuple[str, VectorStore]:
        """A new session's id and store (the oldest or idle ones closed to stay in the cap)."""
        store = self._opener(collection, index_type)
        session = secrets.token_urlsafe(16)
        now = time.monotonic()
        with self._lock:
            stale = [sid for sid, s in self._sessions.items() if now - s.used > SESSION_IDLE_S]
            while len(self._sessions) - len(stale) >= MAX_SESSIONS:
                oldest = min((sid for sid in self._sessions if sid not in stale),
                             key=lambda sid: self._sessions[sid].used)
                stale.append(oldest)
            closing = [self._sessions.pop(sid).store for sid in stale]
            self._sessions[session] = _Session(store, now)
        _close_all(closing)
        return session, store

    def store(self, session: str) -> VectorStore:
        """The store of a session (StoreUnavailableError once it was closed)."""
        with self._lock:
            found = self._sessions.get(session)
            if found is None:
                raise StoreUnavailableError(
                    "the mmrag server closed this command's session (idle too long, or too "
                    "many at once); run the command again"
                )
            found.used = time.monotonic()
            return found.store

    def close(self, session: str) -> None:
        """Close one session's store (nothing when it is already gone)."""
        with self._lock:
            found = self._sessions.pop(session, None)
        if found is not None:
            _close_all([found.store])

    def close_all(self) -> None:
        """Close every session's store (server shutdown)."""
        with self._lock:
            closing = [s.store for s in self._sessions.values()]
            self._sessions.clear()
        _close_all(closing)


def _close_all(stores: list[VectorStore]) -> None:
    """Close stores, ignoring connections already gone."""
    for store in stores:
        with contextlib.suppress(MmragError):
            store.close()
