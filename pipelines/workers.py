"""A tiny pool of daemon worker threads for ``config={'workers': N}`` nodes."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from pipelines.channel import Channel, RunControl

Job = Callable[[], Any]


class WorkerPool:
    """N daemon threads running jobs; each finished job kicks the owning stage's input channel."""

    def __init__(self, size: int, name: str, ctl: RunControl, notify: Channel) -> None:
        self._ctl = ctl
        self._notify = notify
        self._tasks: queue.SimpleQueue[tuple[Future[Any], Job] | None] = queue.SimpleQueue()
        self.threads = [
            threading.Thread(target=self._work, name=f"{name}-w{i}", daemon=True)
            for i in range(size)
        ]
        for thread in self.threads:
            thread.start()

    def submit(self, job: Job) -> Future[Any]:
        """Queue a job; its result (or exception) lands in the returned future."""
        future: Future[Any] = Future()
        self._tasks.put((future, job))
        return future

    def shutdown(self) -> None:
        """Let every worker exit once the queued jobs are done (or skipped, if cancelled)."""
        for _ in self.threads:
            self._tasks.put(None)

    def _work(self) -> None:
        while True:
            task = self._tasks.get()
            if task is None:
                return
            future, job = task
            if self._ctl.cancelled or not future.set_running_or_notify_cancel():
                future.cancel()
                continue
            try:
                result = job()
            except BaseException as exc:  # noqa: BLE001 - handed to the stage thread, re-raised there
                future.set_exception(exc)
            else:
                future.set_result(result)
            self._notify.kick()
