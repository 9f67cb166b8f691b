"""Server paths POST /ingest may read: only under the roots the operator allowed.

``MMRAG_INGEST_ROOTS`` lists them (none by default: every server path is refused). A requested
path must be absolute, without ``..``, lexically under a root, and still under a root once every
symlink in it is resolved. The same resolved check runs again on every file the expansion of a
folder or manifest yields (``checked_items``), so a symlink inside a root, or a manifest row,
never reaches a file outside them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path, PurePath

from ingest.sources import SourceItem
from retrieval.api.errors import ApiError

ROOTS_SETTING = "MMRAG_INGEST_ROOTS"


def resolved_roots(roots: Sequence[Path]) -> tuple[Path, ...]:
    """The configured roots with every symlink resolved (a missing root still counts)."""
    return tuple(Path(os.path.realpath(os.path.expanduser(root))) for root in roots)


def is_within(path: PurePath, roots: Iterable[Path]) -> bool:
    """Whether ``path`` is one of ``roots`` or lies below one."""
    return any(path == root or root in path.parents for root in roots)


def check_server_path(text: str, roots: Sequence[Path]) -> Path:
    """The resolved path of a requested folder, manifest or file; 403/404/422 otherwise."""
    if not roots:
        raise ApiError(
            403,
            f"this server reads no server paths: set {ROOTS_SETTING} to the folders POST "
            "/ingest may read (a JSON list, or paths joined by ':'), or upload the files",
            type="ingest_path_refused",
        )
    if "\0" in text:
        raise ApiError(422, "the path contains a NUL character", type="invalid_request")
    raw = PurePath(text)
    if ".." in raw.parts:
        raise ApiError(403, f"path {text!r} contains '..': give the path itself",
                       type="ingest_path_refused")
    if not raw.is_absolute():
        raise ApiError(422, f"path {text!r} is relative: give an absolute path under "
                       f"{ROOTS_SETTING}", type="invalid_request")
    allowed = resolved_roots(roots)
    plain = Path(os.path.normpath(text))
    if not (is_within(plain, allowed) or is_within(plain, [Path(os.path.normpath(r))
                                                            for r in roots])):
        raise ApiError(403, f"path {text!r} is outside the folders this server may read "
                       f"({ROOTS_SETTING})", type="ingest_path_refused")
    if not os.path.lexists(plain):
        raise ApiError(404, f"path {text!r} does not exist on the server",
                       type="ingest_path_not_found")
    real = Path(os.path.realpath(plain))
    if not is_within(real, allowed):
        raise ApiError(403, f"path {text!r} is a symlink out of the folders this server may "
                       f"read ({ROOTS_SETTING})", type="ingest_path_refused")
    if not real.exists():
        raise ApiError(404, f"path {text!r} is a broken symlink", type="ingest_path_not_found")
    return real


def checked_items(items: Iterable[SourceItem], roots: Sequence[Path]) -> Iterator[SourceItem]:
    """The items of an expansion; a file whose resolved path leaves the roots is a reject
    (URL rows of a manifest go through the API's guarded fetcher instead)."""
    allowed = resolved_roots(roots)
    for item in items:
        if item.kind == "url" or item.error is not None or item.skipped is not None:
            yield item
            continue
        real = Path(os.path.realpath(item.source))
        if is_within(real, allowed):
            yield item
        else:
            yield replace(item, error=f"refused: it resolves outside the folders this server "
                          f"may read ({ROOTS_SETTING})", stage="read")
