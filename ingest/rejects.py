"""The rejects file: one JSON line per item the job could not ingest, written as they happen.

Each line is ``{"source": ..., "reason": ..., "stage": ..., "time": ...}`` where stage is one of
``manifest`` (a bad manifest row), ``read`` (a file that cannot be read), ``fetch`` (a URL that
gave no image), ``decode`` (bytes that are no decodable image, or one over the pixel cap),
``video`` (a video that cannot be opened or decoded) or ``store`` (a row the store refused).
The file is rewritten by every run, so after a rerun it lists what is still missing.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
from pathlib import Path
from typing import IO

from ingest.shard import Shard
from retrieval.stores import is_local_uri

STAGES = ("manifest", "read", "fetch", "decode", "video", "store")
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def default_rejects_path(uri: str, collection: str, shard: Shard | None = None) -> Path:
    """``mmrag-rejects-<collection>[-shard-<i>-of-<n>].jsonl`` next to a Lite file, else in cwd."""
    name = f"mmrag-rejects-{_SAFE.sub('_', collection)}"
    if shard is not None and shard.count > 1:
        name += f"-shard-{shard.index}-of-{shard.count}"
    folder = Path(uri.strip()).expanduser().resolve().parent if is_local_uri(uri) else Path.cwd()
    return folder / f"{name}.jsonl"


class RejectsFile:
    """Appends reject lines to a file (truncated when opened); thread-safe, flushed per line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._handle: IO[str] | None = path.open("w", encoding="utf-8")
        self._lock = threading.Lock()
        self.count = 0

    def write(self, source: str, reason: str, stage: str) -> None:
        """Record one reject."""
        line = json.dumps(
            {
                "source": source,
                "reason": " ".join(reason.split()),
                "stage": stage,
                "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            },
            ensure_ascii=False,
        )
        with self._lock:
            if self._handle is not None:
                self._handle.write(line + "\n")
                self._handle.flush()
                self.count += 1

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            if self._handle is not None:
                self._handle.close()
                self._handle = None
