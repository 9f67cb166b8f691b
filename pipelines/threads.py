"""Reusable daemon threads for stage loops (starting a thread per stage per call is slow)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

IDLE_NAME = "mmrag-pipe-idle"
IDLE_TIMEOUT_S = 30.0

Task = tuple[Callable[[], None], str, threading.Event]


class Runners:
    """An unbounded pool: a task runs on an idle thread, or a new one; idle threads time out."""

    def __init__(self, idle_timeout: float = IDLE_TIMEOUT_S) -> None:
        self._tasks: queue.SimpleQueue[Task] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0
        self._timeout = idle_timeout

    def start(self, fn: Callable[[], None], name: str) -> threading.Event:
        """Run ``fn`` on a thread named ``name``; the returned event is set when it returns."""
        done = threading.Event()
        with self._lock:
            self._tasks.put((fn, name, done))
            if self._idle:
                self._idle -= 1
                return done
        threading.Thread(target=self._loop, name=IDLE_NAME, daemon=True).start()
        return done

    def _loop(self) -> None:
        me = threading.current_thread()
        while True:
            try:
                fn, name, done = self._tasks.get(timeout=self._timeout)
            except queue.Empty:
                with self._lock:
                    if not self._tasks.empty():
                        continue
                    self._idle -= 1
                    return
            me.name = name
            try:
                fn()
            except BaseException:  # noqa: BLE001 - tasks report their own errors; keep the runner
                pass
            finally:
                me.name = IDLE_NAME
                done.set()
                with self._lock:
                    self._idle += 1


RUNNERS = Runners()
