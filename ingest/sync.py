"""mmrag sync: make the rows of a folder match its files (added, moved, removed).

A plan compares the folder's media files with the stored rows whose file lies under it:

* a file no row names is **new**; before it is ingested (the ingest job: dedup, rejects,
  resume), its content hash is compared with the rows whose files are gone, so a renamed or
  moved file is **moved**: its stored row (the same id, the same vector) gets the new source
  and file fields, and nothing is embedded again (a video's frames move together);
* a row whose file is gone (and did not move) is **removed**; a file changed in place (another
  size or modification time, another hash) is removed and ingested again.

Images and videos are synced (text documents and their passage rows are left to ``mmrag
ingest``). Nothing outside the folder is read or changed. A folder that cannot be listed is an
error, a subfolder that cannot be listed keeps its rows, and a folder with no media files at
all while rows lie under it (an unmounted disk looks like that) is refused unless ``allow_empty``: a
vanished root is never read as "every file was deleted".
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ingest.job import IngestOptions, IngestSummary, ProgressSink, run_ingest
from ingest.rejects import RejectsFile
from ingest.sources import DirectorySource, SourceItem
from ingest.video import file_hash, frame_id, frame_source
from retrieval.components import Components
from retrieval.errors import ConfigError
from retrieval.source_names import SOURCE_BYTES_KEY, local_source, storable
from retrieval.stores.base import VectorStore
from retrieval.stores.expr import literal
from retrieval.types import Modality, Record

FILE_KEYS = ("name", "folder", "size", "modified", SOURCE_BYTES_KEY)  # refreshed on a move
VIDEO_KEY = "video"
WRITE_BATCH = 256
LIKE_SPECIAL = ("%", "_", "\\")
SYNCED_KINDS = ("file", "video")  # images and videos; text documents are left to ingest


class SyncRefused(ConfigError):
    """A sync that would remove every row under a folder that shows no media files."""


@dataclass(frozen=True)
class StoredFile:
    """The stored rows of one file under the root (one image, or a video's frames)."""

    path: str
    records: tuple[Record, ...]

    @property
    def ids(self) -> list[str]:
        """The ids of its rows."""
        return [r.id for r in self.records]

    @property
    def is_video(self) -> bool:
        """Whether the rows are frames of a video."""
        return any(isinstance(r.metadata.get(VIDEO_KEY), str) for r in self.records)


@dataclass(frozen=True)
class Move:
    """A stored file found at another path (same content): its rows get the new path."""

    old: str
    new: SourceItem
    stored: StoredFile


@dataclass
class SyncPlan:
    """What a sync of ``root`` will do: files to ingest, rows to move, rows to remove."""

    root: str
    new: list[SourceItem] = field(default_factory=list)
    moved: list[Move] = field(default_factory=list)
    removed: list[StoredFile] = field(default_factory=list)
    unchanged: int = 0
    settling: int = 0  # files written moments ago (min_age_s): left for the next sync
    kept_unlisted: list[str] = field(default_factory=list)  # subfolders that could not be listed

    @property
    def removed_rows(self) -> int:
        """Rows the removals delete (a video has one per frame)."""
        return sum(len(f.records) for f in self.removed)

    @property
    def changes(self) -> bool:
        """Whether the sync would change anything."""
        return bool(self.new or self.moved or self.removed)


@dataclass
class SyncReport:
    """What a sync did: its plan and, unless it was a dry run, the ingest of the new files."""

    plan: SyncPlan
    added: IngestSummary | None = None
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready report."""
        plan = self.plan
        return {
            "root": plan.root,
            "dry_run": self.dry_run,
            "new": [item.source for item in plan.new],
            "moved": [{"from": m.old, "to": m.new.source, "rows": len(m.stored.records)}
                      for m in plan.moved],
            "removed": [f.path for f in plan.removed],
            "removed_rows": plan.removed_rows,
            "unchanged": plan.unchanged,
            "kept_unlisted_folders": plan.kept_unlisted,
            "ingest": self.added.as_dict() if self.added is not None else None,
        }


def source_prefix_expr(root: str) -> str:
    """A Milvus filter that matches at least every source under ``root`` (LIKE on the part of
    the prefix before any character LIKE treats specially; callers check each row exactly)."""
    prefix = root.rstrip(os.sep) + os.sep
    cut = min([prefix.index(c) for c in LIKE_SPECIAL if c in prefix], default=len(prefix))
    return f"source like {literal(prefix[:cut] + '%')}"


def file_path(record: Record) -> str:
    """The file a stored row came from (a video frame's video)."""
    video = record.metadata.get(VIDEO_KEY)
    if isinstance(video, str) and video:
        return video
    return local_source(record.source, record.metadata)


def is_under(path: str, root: str) -> bool:
    """Whether ``path`` lies inside the folder ``root`` (both absolute, root resolved)."""
    return path.startswith(root.rstrip(os.sep) + os.sep)


def stored_files(store: VectorStore, root: str) -> dict[str, StoredFile]:
    """The stored rows whose file lies under ``root``, by file path."""
    grouped: dict[str, list[Record]] = {}
    if not store.exists():
        return {}
    for batch in store.iterate_where(source_prefix_expr(root), 1000, with_vectors=False):
        for record in batch:
            if record.modality != Modality.IMAGE:
                continue  # text passages are ingest's (a document replaces its own passages)
            path = file_path(record)
            if is_under(path, root):
                grouped.setdefault(path, []).append(record)
    return {path: StoredFile(path, tuple(rows)) for path, rows in grouped.items()}


def plan_sync(
    store: VectorStore, root: Path, *, allow_empty: bool = False, min_age_s: float = 0.0
) -> SyncPlan:
    """Compare the files under ``root`` with the rows stored for them (reads files' hashes
    only where a move is possible); changes nothing. Files modified less than ``min_age_s``
    ago (perhaps still being written) are left alone and counted as ``settling``."""
    source = DirectorySource(root)  # a root that cannot be listed is a ConfigError here
    base = source.name
    plan = SyncPlan(root=base)
    on_disk: dict[str, SourceItem] = {}
    for item in source:
        if item.error is not None:
            plan.kept_unlisted.append(item.source)
        elif item.skipped is None and item.kind in SYNCED_KINDS:
            on_disk[item.source] = item
    stored = stored_files(store, base)
    if stored and not on_disk and not allow_empty:
        rows = sum(len(f.records) for f in stored.values())
        raise SyncRefused(
            f"{base} has no image or video files, but {rows} stored row(s) lie under it; "
            "if its disk is not mounted, mount it and sync again; if you really emptied the "
            "folder, run mmrag sync again with --allow-empty"
        )
    gone: dict[str, StoredFile] = {}
    for path, files in stored.items():
        if path in on_disk:
            continue
        if any(is_under(path, folder) for folder in plan.kept_unlisted):
            continue  # its folder could not be listed: not known to be gone
        gone[path] = files
    candidates: list[SourceItem] = []
    young = time.time() - min_age_s
    for path, item in on_disk.items():
        known = stored.get(path)
        if min_age_s > 0 and _modified_after(path, young):
            plan.settling += 1
        elif known is None:
            candidates.append(item)
        elif _changed(known, item):
            gone[path] = known  # changed in place: moved onto itself when the content is equal
            candidates.append(item)
        else:
            plan.unchanged += 1
    for item in candidates:
        match = _find_move(item, gone) if gone else None
        if match is None:
            plan.new.append(item)
        else:
            plan.moved.append(Move(match.path, item, match))
            del gone[match.path]
    plan.removed = sorted(gone.values(), key=lambda f: f.path)
    return plan


def _modified_after(path: str, moment: float) -> bool:
    """Whether the file was modified after ``moment`` (a POSIX time)."""
    try:
        return os.stat(path).st_mtime > moment
    except OSError:
        return False


def _changed(files: StoredFile, item: SourceItem) -> bool:
    """Whether the file looks different from when it was stored (size or modification time)."""
    first = files.records[0].metadata
    now = item.metadata
    return any(key in first and key in now and first[key] != now[key]
               for key in ("size", "modified"))


def _find_move(item: SourceItem, gone: Mapping[str, StoredFile]) -> StoredFile | None:
    """The gone file whose rows ``item``'s content hash names, if any."""
    try:
        digest = file_hash(item.source)
    except OSError:
        return None  # unreadable now: the ingest rejects it with the reason
    for files in gone.values():
        if item.kind == "video" and files.is_video:
            if all(frame_id(digest, _ts_text(r)) == r.id for r in files.records):
                return files
        elif item.kind == "file" and not files.is_video and digest in files.ids:
            return files
    return None


def _ts_text(record: Record) -> str:
    """The ``t=`` of a frame's source."""
    return record.source.rpartition("#t=")[2]


def moved_records(move: Move, records: Iterable[Record]) -> Iterator[Record]:
    """The stored rows of a moved file with its new source and file fields (same vectors)."""
    new = move.new
    for record in records:
        metadata = {k: v for k, v in record.metadata.items() if k not in FILE_KEYS}
        metadata.update(new.metadata)
        source = new.source
        if isinstance(record.metadata.get(VIDEO_KEY), str):
            metadata[VIDEO_KEY] = new.source
            source = frame_source(new.source, _ts_text(record))
        text, fields = storable(source, metadata)
        yield replace(record, source=text, metadata=fields)


def apply_moves(store: VectorStore, moves: list[Move]) -> int:
    """Rewrite the rows of moved files (vectors read back, not embedded); returns rows."""
    written = 0
    for start in range(0, len(moves), WRITE_BATCH):
        chunk = moves[start:start + WRITE_BATCH]
        ids = [i for m in chunk for i in m.stored.ids]
        by_id = {r.id: r for r in store.get(ids, with_vectors=True)}
        records = [
            rec for m in chunk
            for rec in moved_records(m, [by_id[i] for i in m.stored.ids if i in by_id])
        ]
        written += store.upsert(records)
    return written


def run_sync(
    components: Components,
    root: Path,
    options: IngestOptions | None = None,
    *,
    dry_run: bool = False,
    allow_empty: bool = False,
    min_age_s: float = 0.0,
    progress: ProgressSink | None = None,
    rejects: RejectsFile | None = None,
) -> SyncReport:
    """Plan the sync of ``root``, then (unless ``dry_run``) apply it."""
    plan = plan_sync(components.store, root, allow_empty=allow_empty, min_age_s=min_age_s)
    if dry_run:
        return SyncReport(plan, dry_run=True)
    return apply_sync(components, plan, options, progress=progress, rejects=rejects)


def apply_sync(
    components: Components,
    plan: SyncPlan,
    options: IngestOptions | None = None,
    *,
    progress: ProgressSink | None = None,
    rejects: RejectsFile | None = None,
) -> SyncReport:
    """Move, remove and ingest, in that order: a removal never follows an ingest that counted
    the removed id as a duplicate, and a rerun after a crash finishes the work."""
    store = components.store
    apply_moves(store, plan.moved)
    removed = [i for f in plan.removed for i in f.ids]
    if removed:
        store.delete(removed)
    if plan.new:  # the ingest ends with a flush
        added = run_ingest(components, plan.new, options, progress=progress, rejects=rejects)
        return SyncReport(plan, added=added)
    if plan.moved or removed:
        store.flush()
    return SyncReport(plan)


class NewFiles:
    """The new files of a plan as an ingest source (for a progress bar's total)."""

    def __init__(self, plan: SyncPlan) -> None:
        self.name = plan.root
        self.items = plan.new

    def __iter__(self) -> Iterator[SourceItem]:
        return iter(self.items)

    def count(self) -> int:
        """How many new files there are."""
        return len(self.items)


def report_lines(report: SyncReport, shown: int = 20) -> list[str]:
    """What a sync added, moved and removed, as plain lines (the first ``shown`` of each)."""
    plan = report.plan
    lines: list[str] = []

    def listed(title: str, names: list[str]) -> None:
        if not names:
            return
        lines.append(f"{title} ({len(names)}):")
        lines.extend(f"  {name}" for name in names[:shown])
        if len(names) > shown:
            lines.append(f"  ... and {len(names) - shown} more")

    listed("new" + (" (to ingest)" if report.dry_run else ""),
           [item.source for item in plan.new])
    listed("moved" if not report.dry_run else "to move",
           [f"{m.old} -> {m.new.source}" if m.old != m.new.source else f"{m.old} (updated)"
            for m in plan.moved])
    listed("removed" if not report.dry_run else "to remove", [f.path for f in plan.removed])
    for folder in plan.kept_unlisted:
        lines.append(f"kept the rows under {folder}: the folder cannot be listed (check its "
                     "permissions)")
    added = report.added
    if report.dry_run:
        lines.append(
            f"dry run, nothing changed: {plan.root}: {len(plan.new)} new, {len(plan.moved)} to "
            f"move, {len(plan.removed)} to remove ({plan.removed_rows} row(s)), "
            f"{plan.unchanged} unchanged"
        )
        return lines
    ingested = f"added {added.ingested if added is not None else 0}"
    if added is not None and added.duplicates:
        ingested += f" ({added.duplicates} new file(s) already stored under another path)"
    if added is not None and added.rejected:
        ingested += f", rejected {added.rejected}"
    lines.append(
        f"{plan.root}: {ingested}, moved {len(plan.moved)}, removed {len(plan.removed)} "
        f"file(s) ({plan.removed_rows} row(s)), unchanged {plan.unchanged}"
        + (f", {plan.settling} still being written" if plan.settling else "")
    )
    if added is not None and added.rejected and added.rejects_file:
        lines.append(f"rejects: {added.rejects_file}")
    return lines
