"""Aliases for Milvus Lite, which has none: a small JSON pointer file next to the ``.db`` file.

``mmrag.db.aliases.json`` holds ``{"aliases": {"mmrag": "mmrag_v2"}}``. A store opened on an
alias name reads and writes the collection it points to; a pointer wins over a collection of
the same name (so ``mmrag reindex`` can move ``mmrag`` to a new collection without renaming the
old one). Writes are atomic (temporary file, then rename) under a file lock.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from retrieval.errors import StoreError

SUFFIX = ".aliases.json"


def aliases_path(db: Path) -> Path:
    """The pointer file of a Lite database: ``<db>.aliases.json`` beside it."""
    return db.with_name(db.name + SUFFIX)


def read_aliases(db: Path) -> dict[str, str]:
    """Every alias of the database and the collection it names (empty when none)."""
    path = aliases_path(db)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StoreError(f"cannot read Milvus Lite alias file {path}: {exc}") from exc
    aliases = data.get("aliases") if isinstance(data, dict) else None
    if not isinstance(aliases, dict):
        raise StoreError(f"Milvus Lite alias file {path} has no 'aliases' object")
    return {str(k): str(v) for k, v in aliases.items()}


def resolve(db: Path, name: str) -> str:
    """The collection a name reads: the alias target, or the name itself."""
    return read_aliases(db).get(name, name)


@contextmanager
def _locked(db: Path) -> Iterator[dict[str, str]]:
    """The alias map under an exclusive lock; written back atomically on exit."""
    path = aliases_path(db)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        aliases = read_aliases(db)
        yield aliases
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({"aliases": dict(sorted(aliases.items()))}, handle, indent=2)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)


def set_alias(db: Path, alias: str, collection: str) -> None:
    """Point an alias at a collection (creating or moving it)."""
    with _locked(db) as aliases:
        aliases[alias] = collection


def drop_alias(db: Path, alias: str) -> bool:
    """Remove an alias; False when there was none."""
    with _locked(db) as aliases:
        return aliases.pop(alias, None) is not None
