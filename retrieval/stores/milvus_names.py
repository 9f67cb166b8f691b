"""How a name reads a collection: a server's own aliases, or a Milvus Lite pointer file.

A server resolves aliases itself, so calls address the configured name and the server follows
it; Milvus Lite has no aliases, so the name is resolved here through the pointer file beside
the ``.db`` (``lite_aliases``) and calls address the concrete collection.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

from pymilvus import MilvusClient
from pymilvus.exceptions import MilvusException

from retrieval.errors import CollectionNotFoundError, ConfigError
from retrieval.stores import lite_aliases

Call = Callable[[str], AbstractContextManager[MilvusClient]]  # the store's translated call


class Names(Protocol):
    """Name resolution and aliases of one backend."""

    def reads(self, name: str) -> str:
        """The name calls address to read ``name`` (the backend follows the rest)."""

    def resolve(self, name: str) -> str:
        """The concrete collection ``name`` reads now."""

    def describe(self, alias: str) -> str | None:
        """The collection ``alias`` names, or None when there is no such alias."""

    def point(self, alias: str, collection: str) -> None:
        """Make ``alias`` name ``collection``: created, or moved atomically."""

    def drop(self, alias: str) -> bool:
        """Remove ``alias``; False when there was none."""

    def aliases_of(self, collection: str) -> list[str]:
        """The aliases that name ``collection``, sorted."""

    def rename(self, collection: str, new_name: str) -> None:
        """Rename a collection (a ConfigError where the backend cannot)."""


class ServerNames:
    """A Milvus server's aliases: the server resolves them on every call."""

    def __init__(self, call: Call, timeout: float, slow_timeout: float) -> None:
        self._call = call
        self._timeout = timeout
        self._slow_timeout = slow_timeout

    def reads(self, name: str) -> str:
        """The name itself: the server follows its aliases."""
        return name

    def resolve(self, name: str) -> str:
        """The collection the server says ``name`` is (an alias followed)."""
        with self._call("describe_collection") as client:
            desc = client.describe_collection(name, timeout=self._timeout)
        return str(desc.get("collection_name") or name)

    def describe(self, alias: str) -> str | None:
        """The collection ``alias`` names, or None when there is no such alias."""
        with self._call("describe_alias") as client:
            try:
                about = client.describe_alias(alias, timeout=self._timeout)
            except MilvusException as exc:
                if "alias not found" in (exc.message or str(exc)).lower():
                    return None
                raise
        return str(about.get("collection_name") or "") or None

    def point(self, alias: str, collection: str) -> None:
        """Create the alias, or alter it (atomic for its readers)."""
        exists = self.describe(alias) is not None
        with self._call("alias") as client:
            if exists:
                client.alter_alias(collection, alias, timeout=self._timeout)
            else:
                client.create_alias(collection, alias, timeout=self._timeout)

    def drop(self, alias: str) -> bool:
        """Remove the alias; False when there was none."""
        if self.describe(alias) is None:
            return False
        with self._call("drop_alias") as client:
            client.drop_alias(alias, timeout=self._timeout)
        return True

    def aliases_of(self, collection: str) -> list[str]:
        """The server's aliases of ``collection``."""
        with self._call("list_aliases") as client:
            about = client.list_aliases(collection, timeout=self._timeout)
        return sorted(str(a) for a in about.get("aliases", []))

    def rename(self, collection: str, new_name: str) -> None:
        """Rename the collection on the server."""
        with self._call("rename_collection") as client:
            client.rename_collection(collection, new_name, timeout=self._slow_timeout)


class LiteNames:
    """Milvus Lite's aliases: a pointer file beside the ``.db``, which wins over a collection."""

    def __init__(self, db: Path, call: Call, timeout: float) -> None:
        self.db = db
        self._call = call
        self._timeout = timeout

    def reads(self, name: str) -> str:
        """The collection the pointer file names for ``name`` (or ``name`` itself)."""
        return lite_aliases.resolve(self.db, name)

    def resolve(self, name: str) -> str:
        """The collection the pointer file names for ``name`` (or ``name`` itself)."""
        return lite_aliases.resolve(self.db, name)

    def describe(self, alias: str) -> str | None:
        """The collection the pointer file names for ``alias``, or None."""
        return lite_aliases.read_aliases(self.db).get(alias)

    def point(self, alias: str, collection: str) -> None:
        """Write the pointer (the collection must exist: Lite cannot check it later)."""
        with self._call("has_collection") as client:
            exists = bool(client.has_collection(collection, timeout=self._timeout))
        if not exists:
            raise CollectionNotFoundError(f"collection {collection!r} does not exist")
        lite_aliases.set_alias(self.db, alias, collection)

    def drop(self, alias: str) -> bool:
        """Remove the pointer; False when there was none."""
        return lite_aliases.drop_alias(self.db, alias)

    def aliases_of(self, collection: str) -> list[str]:
        """The pointers that name ``collection``."""
        return sorted(a for a, c in lite_aliases.read_aliases(self.db).items() if c == collection)

    def rename(self, collection: str, new_name: str) -> None:
        """Milvus Lite cannot rename collections."""
        raise ConfigError("Milvus Lite cannot rename collections; use an alias instead")
