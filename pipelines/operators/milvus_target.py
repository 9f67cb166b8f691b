"""Where towhee's Milvus operators connect, and whose collection they find there.

towhee names a server by ``host``/``port`` (``user``/``password``); mmrag by ``uri`` (a Milvus
Lite ``.db`` path or ``http(s)://host:port``) and ``token``. Both are accepted. A collection
mmrag created (its description records ``{"mmrag": 1, ...}``) is written through mmrag's store;
any other existing collection is the user's own, written and searched by its own schema.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from pymilvus import MilvusClient

from retrieval.errors import ConfigError
from retrieval.stores.lite_lock import lite_server_pids
from retrieval.stores.milvus_backend import LiteBackend, backend_for

DEFAULT_PORT = 19530
CONNECT_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class MilvusTarget:
    """A Milvus address, its credentials and a collection name."""

    uri: str
    collection: str
    token: str | None = None

    def connect(self) -> MilvusClient:
        """A client to the address, kept open for the operator's life.

        A Milvus Lite file this process already serves through pymilvus (the notebooks'
        ``connections.connect(uri=...)`` before the pipeline) is shared the way pymilvus shares
        it; any other address goes through mmrag's backend (its Lite lock and process sharing).
        Never closed: closing the last client of a Lite file stops its process, which would cut
        off the user's own pymilvus connection to the same file.
        """
        backend = backend_for(self.uri)
        if isinstance(backend, LiteBackend) and served_by_this_process(backend.db):
            return MilvusClient(uri=str(backend.db), token=self.token or "")
        return backend.connect(self.token, CONNECT_TIMEOUT_S)


def served_by_this_process(db: Path) -> bool:
    """Whether a Milvus Lite server started by this process (pymilvus's) has ``db`` open."""
    children = {child.pid for child in psutil.Process().children()}
    return any(pid in children for pid in lite_server_pids(db))


def milvus_target(
    *,
    host: str | None,
    port: int | str | None,
    uri: str | None,
    collection_name: str | None,
    collection: str | None,
    user: str | None,
    password: str | None,
    token: str | None,
) -> MilvusTarget:
    """The target of towhee's (host, port, collection_name, user, password) or mmrag's args."""
    if uri and host:
        raise ConfigError(f"pass uri= or host=/port=, not both (got uri={uri!r}, host={host!r})")
    if collection_name and collection and collection_name != collection:
        raise ConfigError("pass collection_name= or collection= (they are one), not both")
    name = collection_name or collection
    if not name:
        raise ConfigError("name the collection: collection_name='...' (or collection='...')")
    address = uri or f"http://{host or 'localhost'}:{port or DEFAULT_PORT}"
    if token is None and user:
        token = f"{user}:{password or ''}"
    return MilvusTarget(uri=address, collection=name, token=token)


def made_by_mmrag(description: dict[str, Any]) -> bool:
    """Whether ``describe_collection`` shows a collection mmrag created."""
    try:
        recorded = json.loads(description.get("description") or "{}")
    except json.JSONDecodeError:
        return False
    return isinstance(recorded, dict) and recorded.get("mmrag") == 1
