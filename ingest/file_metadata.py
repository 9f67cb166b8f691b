"""What the file system says about a file of a folder ingest, as filterable metadata fields.

* ``name``: the file name; ``folder``: its folder relative to the ingested root (``""`` at the
  root, ``/``-separated below it), so ``{"folder": "2024/trip"}`` or ``{"folder": {"prefix":
  "2024"}}`` select part of a library;
* ``size``: bytes; ``modified``: the modification time as ISO-8601 UTC to the second
  (``2024-05-01T12:30:00+00:00``), so a string comparison is a date range.

Names that are not valid UTF-8 get U+FFFD in place of the bad bytes (the exact bytes stay in
``source_b64``, see ``retrieval.source_names``). A file that cannot be stat'ed gets only its
name and folder: the read that follows rejects it with the reason.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

from ingest.metadata import valid_text


def file_fields(path: str, rel: str) -> dict[str, Any]:
    """name, folder, size and modified of the file at ``path`` (``rel`` to the ingested root)."""
    folder, _, name = rel.rpartition("/")
    fields: dict[str, Any] = {"name": valid_text(name), "folder": valid_text(folder)}
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return fields
    fields["size"] = info.st_size
    modified = iso_utc(info.st_mtime)
    if modified is not None:
        fields["modified"] = modified
    return fields


def iso_utc(timestamp: float) -> str | None:
    """A POSIX timestamp as ISO-8601 UTC to the second (None when out of range)."""
    try:
        moment = dt.datetime.fromtimestamp(timestamp, tz=dt.timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None
    return moment.replace(microsecond=0).isoformat()
