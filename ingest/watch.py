"""mmrag watch: keep a collection in sync with a folder as its files come and go (watchdog).

File system events only say *that* something changed: each batch of them runs one sync of the
whole folder (``ingest.sync``), which finds what was added, moved and removed. Events are
debounced (a batch runs once no event came for ``quiet_s``, or ``max_wait_s`` after its first
event), so a burst of a thousand new files becomes a few ingest jobs, not a thousand; files
modified within ``quiet_s`` are left for the next batch (they may still be being written).
On start, and whenever the folder comes back, a sync catches up with what changed while
nobody watched.

A watch folder that disappears (deleted, moved away, its disk unmounted) stops nothing and
removes nothing: the watcher says so once, keeps every row, looks for the folder again every
``poll_s`` and catches up when it is back. A folder recreated in its place is watched anew.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import (
    EVENT_TYPE_CLOSED_NO_WRITE,
    EVENT_TYPE_OPENED,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from ingest.job import IngestOptions
from ingest.rejects import RejectsFile
from ingest.sources import media_kind
from ingest.sync import SyncReport, report_lines, run_sync
from retrieval.components import Components
from retrieval.errors import MmragError

IGNORED_EVENTS = frozenset({EVENT_TYPE_OPENED, EVENT_TYPE_CLOSED_NO_WRITE})  # our own reads


@dataclass(frozen=True)
class WatchOptions:
    """Debounce and polling of a watch."""

    quiet_s: float = 1.0  # a batch runs once no event came for this long...
    max_wait_s: float = 10.0  # ...or this long after its first event, whichever comes first
    poll_s: float = 2.0  # how often the folder itself is checked (gone, back, replaced)


class ChangeBatch:
    """Events since the last sync: marked by the observer's thread, taken by the watcher."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._first: float | None = None
        self._last = 0.0
        self._events = 0

    def mark(self) -> None:
        """One more relevant event."""
        with self._cond:
            now = time.monotonic()
            if self._first is None:
                self._first = now
            self._last = now
            self._events += 1
            self._cond.notify_all()

    def wait(self, options: WatchOptions, stop: threading.Event) -> bool:
        """Wait up to ``poll_s`` for a batch to be due (True), or return False (poll again)."""
        deadline = time.monotonic() + options.poll_s
        with self._cond:
            while not stop.is_set():
                now = time.monotonic()
                if self._first is not None:
                    due = min(self._last + options.quiet_s, self._first + options.max_wait_s)
                    if now >= due:
                        return True
                    wake = min(due, deadline)
                else:
                    wake = deadline
                if now >= deadline:
                    return False
                self._cond.wait(max(0.01, wake - now))
        return False

    def take(self) -> int:
        """The events of the due batch (counted); the next batch starts empty."""
        with self._cond:
            events, self._events, self._first = self._events, 0, None
            return events


class _Events(FileSystemEventHandler):
    """Marks the batch for events about media files and folders (not reads, not other files:
    a .db or rejects file inside the folder never triggers a sync)."""

    def __init__(self, batch: ChangeBatch) -> None:
        self.batch = batch

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in IGNORED_EVENTS:
            return
        paths = [os.fsdecode(event.src_path), os.fsdecode(event.dest_path or b"")]
        folder_change = event.is_directory and event.event_type != "modified"
        if folder_change or any(p and media_kind(p) is not None for p in paths):
            self.batch.mark()


def folder_identity(root: Path) -> tuple[int, int] | None:
    """(device, inode) of the folder, or None when it is not a listable folder now."""
    try:
        info = os.stat(root)
        os.scandir(root).close()
    except OSError:
        return None
    return (info.st_dev, info.st_ino) if os.path.isdir(root) else None


class FolderWatcher:
    """Syncs ``root`` into the components' collection on start and after each batch of events."""

    def __init__(
        self,
        components: Components,
        root: Path,
        report: Callable[[str], None],
        *,
        options: IngestOptions | None = None,
        watch: WatchOptions | None = None,
        rejects: RejectsFile | None = None,
    ) -> None:
        self.components = components
        self.root = Path(os.path.abspath(root.expanduser()))
        self.report = report
        self.options = options
        self.watch = watch or WatchOptions()
        self.rejects = rejects
        self.syncs = 0  # syncs run so far (catch-ups included)

    def run(self, stop: threading.Event) -> None:
        """Watch until ``stop`` is set (the sync in progress finishes first)."""
        announced_gone = False
        while not stop.is_set():
            identity = folder_identity(self.root)
            if identity is None:
                if not announced_gone:
                    self.report(
                        f"watch folder {self.root} is gone or cannot be listed (deleted, moved "
                        f"or unmounted); its rows are kept; waiting for it to come back "
                        f"(checked every {self.watch.poll_s:g} s; Ctrl-C stops)"
                    )
                    announced_gone = True
                stop.wait(self.watch.poll_s)
                continue
            if announced_gone:
                self.report(f"watch folder {self.root} is back; catching up")
                announced_gone = False
            self._watch_folder(identity, stop)

    def _watch_folder(self, identity: tuple[int, int], stop: threading.Event) -> None:
        """Observe one incarnation of the folder until it goes, is replaced, or stop is set."""
        batch = ChangeBatch()
        observer = self._observer(batch)
        try:
            if self._sync():  # catch up with what changed while nobody watched
                batch.mark()  # files still being written: look again after quiet_s
            while not stop.is_set():
                due = batch.wait(self.watch, stop)
                if folder_identity(self.root) != identity:
                    return
                if due:
                    batch.take()
                    if self._sync() and not stop.is_set():
                        batch.mark()  # files still being written: look again after quiet_s
        finally:
            observer.stop()
            observer.join()

    def _observer(self, batch: ChangeBatch) -> BaseObserver:
        observer = Observer()
        observer.schedule(_Events(batch), str(self.root), recursive=True)
        observer.start()
        return observer

    def _sync(self) -> int:
        """One sync, reported; returns how many files were left settling (0 after an error)."""
        self.syncs += 1
        try:
            result: SyncReport = run_sync(
                self.components, self.root, self.options, min_age_s=self.watch.quiet_s,
                rejects=self.rejects,
            )
        except MmragError as exc:  # the folder went mid-walk, a refused sync, Milvus down
            self.report(f"sync of {self.root} did not run: {exc}")
            return 0
        if result.plan.changes:
            for line in report_lines(result):
                self.report(line)
        return result.plan.settling
