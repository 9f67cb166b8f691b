"""A rich progress bar for ingest: items/s always, bar and ETA once the total is known.

The total is counted on a background thread (a second walk of a folder, the rows of a manifest)
so a huge source starts at once with a spinner and a rate, and gains its bar and ETA when the
count finishes. Videos add their planned frames to the total as they are opened.
"""

from __future__ import annotations

import threading
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from ingest.sources import Source
from retrieval.errors import MmragError


class RateColumn(ProgressColumn):
    """Items per second."""

    def render(self, task: Task) -> Text:
        """Render the current rate."""
        speed = task.finished_speed or task.speed
        text = f"{speed:,.1f} items/s" if speed else "-- items/s"
        return Text(text, style="progress.data.speed")


class ProgressBar:
    """A ProgressSink drawing one rich task; use as a context manager."""

    def __init__(self, console: Console, source: Source | None = None, label: str = "ingest"):
        self.console = console
        self.source = source
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn(f"[bold]{label}"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            RateColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            speed_estimate_period=10.0,
        )
        self.task = self.progress.add_task(label, total=None)
        self._lock = threading.Lock()
        self._counted: int | None = None
        self._extra = 0
        self._stop = threading.Event()

    def __enter__(self) -> ProgressBar:
        self.progress.start()
        if self.source is not None:
            threading.Thread(target=self._count, name="mmrag-ingest-count", daemon=True).start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if exc_type is None:
            done = self.progress.tasks[0].completed
            self.progress.update(self.task, total=done)
        self.progress.stop()

    def advance(self, n: int) -> None:
        """n more items are done."""
        self.progress.advance(self.task, n)

    def add_total(self, n: int) -> None:
        """n more items are expected (frames of a video just opened)."""
        with self._lock:
            self._extra += n
            if self._counted is not None:
                self.progress.update(self.task, total=self._counted + self._extra)

    def _count(self) -> None:
        """Count the source's items and set the total (errors leave the total unknown)."""
        assert self.source is not None
        try:
            counted = self.source.count()
        except (OSError, MmragError):
            return
        with self._lock:
            if self._stop.is_set():
                return
            self._counted = counted
            self.progress.update(self.task, total=counted + self._extra)
