"""Manifest sources: CSV/TSV/Parquet/JSONL rows with a ``path``, ``url`` or ``text`` column.

Columns ``id``, ``path``, ``url``, ``caption`` and ``text`` are matched case-insensitively; every
other column is metadata (see :mod:`ingest.metadata` for the mapping). A row with ``text`` and no
``path``/``url`` is a text document (passage rows, ``retrieval.text_rows``; its id, if any, names
the document, so an edited text replaces its passages); on an image row ``text`` is metadata. A
row with both ``path`` and ``url`` uses ``path`` when it is not blank. Relative paths resolve
against the manifest's folder; a ``path`` cell that is an http(s) URL is fetched like a ``url``.

The file is read when the source is opened, so an unreadable manifest, or one with neither a
``path`` nor a ``url`` column, fails before any work with a message naming the file. Problems of
single rows become rejects naming the row and its line: malformed lines (a stray quote, too many
cells, JSON that is no object or nests too deeply to parse: see :mod:`ingest.manifest_readers`),
an empty path, a path with a NUL character, a bad id, another URL scheme, metadata that is too
big or nests deeper than ``MAX_METADATA_DEPTH``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ingest.manifest_readers import TEXT_COLUMN, BadLine, read_table
from ingest.metadata import (
    MAX_METADATA_DEPTH,
    RESERVED_COLUMNS,
    InvalidIdError,
    cell_text,
    check_id,
    is_missing,
    nesting_depth,
    row_metadata,
    sanitize_keys,
)
from ingest.shard import Shard
from ingest.sources import ItemKind, SourceItem, media_kind
from retrieval.errors import ConfigError

CHUNK_ROWS = 10_000
MAX_METADATA_BYTES = 60_000  # Milvus JSON fields hold 64 KiB
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")

__all__ = ["BadLine", "Columns", "ManifestSource", "read_table"]


@dataclass(frozen=True)
class Columns:
    """Which manifest column plays which role, and the metadata key of every other one."""

    id: str | None
    path: str | None
    url: str | None
    caption: str | None
    metadata: Mapping[str, str]
    text: str | None = None

    @classmethod
    def of(cls, names: list[str]) -> Columns:
        """Assign roles by case-insensitive name (first match wins); the rest are metadata."""
        roles: dict[str, str] = {}
        for name in names:
            role = name.strip().lower()
            if role in (*RESERVED_COLUMNS, TEXT_COLUMN) and role not in roles:
                roles[role] = name
        taken = set(roles.values())
        return cls(
            id=roles.get("id"),
            path=roles.get("path"),
            url=roles.get("url"),
            caption=roles.get("caption"),
            metadata=sanitize_keys(n for n in names if n not in taken),
            text=roles.get(TEXT_COLUMN),
        )


class ManifestSource:
    """The rows of one manifest file (restricted to a shard), read eagerly with pandas."""

    def __init__(self, path: Path, shard: Shard | None = None) -> None:
        self.path = path.expanduser().resolve()
        self.base = self.path.parent
        self.shard = shard or Shard()
        self.name = str(self.path)
        table = read_table(self.path)
        self.frame, self.lines, self.bad_lines = table.frame, table.lines, table.bad
        names = [str(c) for c in self.frame.columns]
        self.frame.columns = pd.Index(names)
        self.columns = Columns.of(names)
        if self.columns.path is None and self.columns.url is None and self.columns.text is None:
            shown = ", ".join(repr(n) for n in names[:20]) or "none"
            raise ConfigError(
                f"manifest {self.path} has no 'path', 'url' or 'text' column "
                f"(columns: {shown}); name the column of image files 'path', of image URLs "
                "'url', or of document text 'text'"
            )

    def __iter__(self) -> Iterator[SourceItem]:
        for bad in self.bad_lines:
            key = f"line:{bad.line}"
            if self.shard.owns(key):
                yield SourceItem(
                    source=f"{self.path}:{bad.line}", key=key, error=bad.reason, stage="manifest"
                )
        for start in range(0, len(self.frame), CHUNK_ROWS):
            rows = self.frame.iloc[start : start + CHUNK_ROWS].to_dict("records")
            for offset, row in enumerate(rows):
                number = start + offset + 1
                key = self._key(row, number)
                if self.shard.owns(key):
                    yield self._item(row, number, self.lines[number - 1], key)

    def count(self) -> int:
        """Rows (and unparsable lines) of this shard."""
        if self.shard.count == 1:
            return len(self.frame) + len(self.bad_lines)
        total = sum(1 for bad in self.bad_lines if self.shard.owns(f"line:{bad.line}"))
        for start in range(0, len(self.frame), CHUNK_ROWS):
            rows = self.frame.iloc[start : start + CHUNK_ROWS].to_dict("records")
            total += sum(
                1 for k, row in enumerate(rows) if self.shard.owns(self._key(row, start + k + 1))
            )
        return total

    def _key(self, row: Mapping[str, Any], number: int) -> str:
        """The shard key: the id as written, else the path/url as written, else the row."""
        cols = self.columns
        for column in (cols.id, cols.path, cols.url):
            if column is not None and not is_missing(row.get(column)):
                return cell_text(row.get(column))
        return f"row:{number}"

    def _item(self, row: Mapping[str, Any], number: int, line: int, key: str) -> SourceItem:
        """One row as a SourceItem (with ``error`` set when the row cannot be ingested).

        ``number`` counts rows, ``line`` is where the row starts in the file (reasons name it).
        """
        cols = self.columns
        where = f"{self.path}#row={number}"
        deep = self._too_deep(row)
        if deep is not None:
            return self._reject(
                where, key, f"row {number} (line {line}): column {deep!r} nests deeper than "
                f"{MAX_METADATA_DEPTH} levels; flatten it to store it as metadata",
            )
        caption = cell_text(row.get(cols.caption)) if cols.caption else ""
        metadata = row_metadata(row, cols.metadata)
        item_id: str | None = None
        if cols.id is not None and not is_missing(row.get(cols.id)):
            try:
                item_id = check_id(row.get(cols.id))
            except InvalidIdError as exc:
                return self._reject(where, key, f"row {number}: {exc}")
        target, from_url = self._target(row)
        text = self._text(row)
        if not target and text is not None:
            return self._text_item(where, key, number, text, caption, metadata, item_id)
        if text is not None:
            metadata = {**metadata, TEXT_COLUMN: text}  # an image row's text is metadata
        if not target:
            what = "path/url and no text" if self.columns.text is not None else "path/url"
            return self._reject(where, key, f"row {number} has an empty {what}")
        if "\0" in target:
            return self._reject(
                where, key, f"row {number} (line {line}): the path/url contains a NUL character, "
                "which no file name or URL can hold",
            )
        size = len(json.dumps(metadata, ensure_ascii=False).encode("utf-8"))
        if size > MAX_METADATA_BYTES:
            reason = f"row {number}: metadata is {size} bytes of JSON, over {MAX_METADATA_BYTES}"
            return self._reject(target, key, reason)
        kind: ItemKind
        scheme = _SCHEME.match(target)
        if scheme is not None:
            if scheme.group(1).lower() not in ("http", "https"):
                return self._reject(
                    target, key, f"unsupported URL scheme {scheme.group(1)!r} (http and https only)"
                )
            source, kind = target, "url"
        elif from_url:
            return self._reject(target, key, f"row {number}: url {target[:80]!r} is not http(s)")
        else:
            source = os.path.normpath(os.path.join(self.base, os.path.expanduser(target)))
            found = media_kind(source)
            kind = found if found in ("video", "text") else "file"  # a .txt/.md path: a document
        return SourceItem(
            source=source, kind=kind, caption=caption, metadata=metadata, id=item_id, key=key
        )

    def _text(self, row: Mapping[str, Any]) -> str | None:
        """The row's text cell (None when there is no text column or the cell is missing)."""
        column = self.columns.text
        if column is None or is_missing(row.get(column)):
            return None
        return cell_text(row.get(column))

    def _text_item(
        self, where: str, key: str, number: int, text: str, caption: str,
        metadata: Mapping[str, Any], item_id: str | None,
    ) -> SourceItem:
        """A row's document (its caption, if any, kept as the ``title`` metadata)."""
        if not text.strip():
            return self._reject(
                where, key, f"row {number} has no path/url and its text is empty; give it text "
                "or an image",
            )
        size = len(json.dumps(metadata, ensure_ascii=False).encode("utf-8"))
        if size > MAX_METADATA_BYTES:
            reason = f"row {number}: metadata is {size} bytes of JSON, over {MAX_METADATA_BYTES}"
            return self._reject(where, key, reason)
        fields = {**metadata, "title": caption} if caption else dict(metadata)
        return SourceItem(
            source=where, kind="text", metadata=fields, id=item_id, key=key, text=text
        )

    def _target(self, row: Mapping[str, Any]) -> tuple[str, bool]:
        """(the path or url cell, stripped; whether it came from the url column)."""
        cols = self.columns
        if cols.path is not None and not is_missing(row.get(cols.path)):
            return cell_text(row.get(cols.path)).strip(), False
        if cols.url is not None and not is_missing(row.get(cols.url)):
            return cell_text(row.get(cols.url)).strip(), True
        return "", False

    def _too_deep(self, row: Mapping[str, Any]) -> str | None:
        """The first column whose value nests deeper than MAX_METADATA_DEPTH, else None."""
        for column, value in row.items():
            if nesting_depth(value, MAX_METADATA_DEPTH) > MAX_METADATA_DEPTH:
                return str(column)
        return None

    @staticmethod
    def _reject(source: str, key: str, reason: str) -> SourceItem:
        return SourceItem(source=source, key=key, error=reason, stage="manifest")
