"""Manifest files -> a DataFrame of rows, the line each row starts on, and the unparsable lines.

CSV/TSV lines are checked with Python's ``csv`` module before pandas types the columns, so that a
malformed line is one reject with its line number and never changes the rows around it:

* a stray quote (``b.jpg,"dog`` with no closing quote) opens a quoted cell that would run on
  into the next lines; when one of those lines looks like a row of its own (its path or url cell
  names a media file or an http(s) URL), or the quote never closes, or the cell is followed by
  text, the line with the quote is rejected and parsing restarts on the next line;
* a line with more cells than the header is rejected (as pandas would);
* a quoted cell spanning lines that look like text (a multi-line caption) stays one row.

JSONL lines that are not JSON objects, or nest too deeply for the JSON parser, are rejected.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ingest.metadata import RESERVED_COLUMNS
from ingest.sources import media_kind
from retrieval.errors import ConfigError

_READ_ERRORS = (OSError, ValueError, ImportError, pd.errors.ParserError)
_URL_PREFIXES = ("http://", "https://")
TEXT_COLUMN = "text"  # a row's document text (a text item when the row names no image)


@dataclass(frozen=True)
class BadLine:
    """A manifest line the parser could not turn into a row."""

    line: int
    reason: str


@dataclass(frozen=True)
class Table:
    """A manifest's rows, the line each row starts on (1-based), and its unparsable lines."""

    frame: pd.DataFrame
    lines: list[int]
    bad: list[BadLine]


def read_table(path: Path) -> Table:
    """Read a manifest; ConfigError naming the file when it is unreadable as a whole."""
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".tsv"):
            return _read_delimited(path, "\t" if suffix == ".tsv" else ",")
        if suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path, dtype_backend="numpy_nullable")
            return Table(frame, list(range(1, len(frame) + 1)), [])
        return _read_jsonl(path)
    except pd.errors.EmptyDataError as exc:
        raise ConfigError(f"cannot read manifest {path}: the file is empty") from exc
    except _READ_ERRORS as exc:
        reason = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise ConfigError(f"cannot read manifest {path}: {reason}") from exc


class _Lines:
    """The physical lines of a text, fed to ``csv.reader`` from a position that can move back."""

    def __init__(self, lines: Sequence[str]) -> None:
        self.lines = lines
        self.pos = 0

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        if self.pos >= len(self.lines):
            raise StopIteration
        self.pos += 1
        return self.lines[self.pos - 1]


def _read_delimited(path: Path, sep: str) -> Table:
    """CSV/TSV: lines checked one record at a time, then the good records typed by pandas."""
    with path.open(encoding="utf-8-sig", errors="replace", newline="") as handle:
        physical = handle.readlines()
    feed = _Lines(physical)
    reader = csv.reader(feed, delimiter=sep, strict=True)
    header = _header(reader, path)
    targets = [i for i, name in enumerate(header) if name.strip().lower() in ("path", "url")]
    good: list[list[str]] = []
    lines: list[int] = []
    bad: list[BadLine] = []
    while feed.pos < len(physical):
        start = feed.pos
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            bad.append(_malformed(start + 1, feed.pos, str(exc)))
            feed.pos = start + 1
            continue
        if feed.pos - start > 1 and _swallows_rows(physical[start + 1 : feed.pos], sep, targets):
            why = "a quoted cell runs on into lines that look like rows"
            bad.append(_malformed(start + 1, feed.pos, why))
            feed.pos = start + 1
            continue
        if not record:
            continue  # a blank line
        if len(record) > len(header):
            reason = f"line {start + 1} has {len(record)} cells, the header has {len(header)}"
            bad.append(BadLine(start + 1, reason))
            continue
        good.append(record)
        lines.append(start + 1)
    return Table(_typed_frame(header, good, sep), lines, bad)


def _header(reader: Any, path: Path) -> list[str]:
    """The first record: the column names (ConfigError when there is none or it is malformed)."""
    try:
        for record in reader:
            if record:
                return list(record)
    except csv.Error as exc:
        raise ConfigError(
            f"cannot read manifest {path}: the header line is malformed ({exc})"
        ) from exc
    raise pd.errors.EmptyDataError("no header")


def _malformed(line: int, end: int, why: str) -> BadLine:
    """The reject of a line that is no CSV record (most often a stray quote)."""
    spanned = f", read on to line {end}" if end > line else ""
    return BadLine(
        line,
        f"line {line} is malformed ({why}{spanned}); the next line is read as a new row. "
        "Quote a cell that contains a quote as a whole, doubling the quotes inside it",
    )


def _swallows_rows(continued: Sequence[str], sep: str, targets: Sequence[int]) -> bool:
    """Whether a line inside a quoted cell, read on its own, is a row naming a media file/URL."""
    for line in continued:
        try:
            cells = next(csv.reader([line], delimiter=sep, strict=True), [])
        except csv.Error:
            continue
        for index in targets:
            cell = cells[index].strip() if index < len(cells) else ""
            if cell and (cell.lower().startswith(_URL_PREFIXES) or media_kind(cell) is not None):
                return True
    return False


def _typed_frame(header: list[str], records: list[list[str]], sep: str) -> pd.DataFrame:
    """The checked records typed as before: reserved columns text, others inferred by pandas."""
    head = io.StringIO()
    csv.writer(head, delimiter=sep, lineterminator="\n").writerow(header)
    names = pd.read_csv(io.StringIO(head.getvalue()), sep=sep, nrows=0).columns
    typed_as_text = (*RESERVED_COLUMNS, TEXT_COLUMN)
    text_cols = {c: str for c in names if str(c).strip().lower() in typed_as_text}
    buffer = io.StringIO(head.getvalue())
    buffer.seek(0, io.SEEK_END)
    csv.writer(buffer, delimiter=sep, lineterminator="\n").writerows(records)
    buffer.seek(0)
    frame = pd.read_csv(
        buffer, sep=sep, dtype=text_cols, dtype_backend="numpy_nullable", skip_blank_lines=False
    )
    if len(frame) != len(records):  # cannot happen for records csv.writer wrote
        raise ValueError(f"{len(records)} checked rows were read back as {len(frame)}")
    return frame


def _read_jsonl(path: Path) -> Table:
    """JSON Lines: one object per line; other lines (and too deep ones) are recorded as bad."""
    records: list[dict[str, Any]] = []
    lines: list[int] = []
    bad: list[BadLine] = []
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                reason = f"line {number} is not valid JSON: {exc.msg} at column {exc.colno}"
                bad.append(BadLine(number, reason))
                continue
            except RecursionError:
                bad.append(BadLine(number, f"line {number} nests too deeply to parse as JSON"))
                continue
            if not isinstance(value, dict):
                reason = f"line {number} is not a JSON object but {type(value).__name__}"
                bad.append(BadLine(number, reason))
                continue
            records.append(value)
            lines.append(number)
    if bad and not records:
        raise ConfigError(
            f"cannot read manifest {path}: no line is a JSON object ({bad[0].reason})"
        )
    return Table(pd.DataFrame(records, dtype=object), lines, bad)
