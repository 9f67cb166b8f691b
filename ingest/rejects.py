"""The rejects file: one JSON line per item the job could not ingest, written as they happen.

Each line is ``{"source": ..., "reason": ..., "stage": ..., "time": ...}`` where stage is one of
``manifest`` (a bad manifest row), ``conflict`` (a manifest id given to another image earlier in
the run), ``read`` (a file that cannot be read), ``fetch`` (a URL that
gave no image), ``decode`` (bytes that are no decodable image, or one over the pixel cap),
``video`` (a video that cannot be opened or decoded) or ``store`` (a row the store refused).
The file is rewritten by every run, so after a rerun it lists what is still missing.

A source that is not valid UTF-8 is written as text with U+FFFD and its exact bytes as
``"source_b64"`` (base64). Reasons never quote file contents: ``clean_reason`` replaces any
bytes literal (``b'...'``) a library put in an error message. The file is created readable by
its owner only (0600; an existing file keeps its mode), as it lists paths and reasons.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import threading
from pathlib import Path
from typing import IO, Any

from ingest.shard import Shard
from retrieval.source_names import SOURCE_BYTES_KEY, display_text, source_bytes
from retrieval.stores import is_local_uri

STAGES = ("manifest", "conflict", "read", "fetch", "decode", "video", "store")
MAX_REASON_CHARS = 500
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")
_BYTES_LITERAL = re.compile(r"""\bb(?:'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*")""")


def clean_reason(reason: str) -> str:
    """One line, bytes literals replaced by ``<bytes>``, at most MAX_REASON_CHARS characters."""
    text = _BYTES_LITERAL.sub("<bytes>", " ".join(display_text(reason).split()))
    return text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 3] + "..."


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
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(path, flags, 0o600)  # the mode applies only when the file is created
        self._handle: IO[str] | None = os.fdopen(fd, "w", encoding="utf-8")
        self._lock = threading.Lock()
        self.count = 0

    def write(self, source: str, reason: str, stage: str) -> None:
        """Record one reject."""
        entry: dict[str, Any] = {"source": display_text(source)}
        encoded = source_bytes(source)
        if encoded is not None:
            entry[SOURCE_BYTES_KEY] = encoded
        entry.update(
            reason=clean_reason(reason),
            stage=stage,
            time=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        )
        line = json.dumps(entry, ensure_ascii=False)
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
