"""mmrag watch with a real watchdog observer on real files: a burst of 1,000 new files is
batched into a few ingest jobs with an exact final count, a watch folder that disappears is
waited for (no row removed) and caught up with when it is back, and a watcher started again
catches up with what changed while it was stopped."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest

from ingest.watch import FolderWatcher, WatchOptions
from mmrag.cli import main
from retrieval.components import build_components
from retrieval.config import Settings
from retrieval.embedders.base import Embedder
from retrieval.types import Record
from tests.living.conftest import write_png

REPO = Path(__file__).resolve().parents[2]
BURST = 1000
WAIT_S = 600.0  # a bound on waiting for output, so a broken watcher fails instead of hanging
ADDED = re.compile(r": added (\d+),")


class Lines:
    """The lines a process prints, read on a thread; ``expect`` waits for a matching one."""

    def __init__(self, stream: IO[str]) -> None:
        self.seen: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def expect(self, done: Callable[[str], bool]) -> str:
        """The first new line for which ``done`` is true (fails at EOF or after WAIT_S)."""
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=1.0)
            except queue.Empty:
                continue
            if line is None:
                pytest.fail("the watcher ended early:\n" + "\n".join(self.seen[-40:]))
            self.seen.append(line)
            if done(line):
                return line
        pytest.fail("no expected line from the watcher:\n" + "\n".join(self.seen[-40:]))


def added_until(lines: Lines, total: int) -> int:
    """Read sync summaries until they add up to ``total`` ingested files; returns the syncs."""
    added = syncs = 0
    while added < total:
        line = lines.expect(lambda text: ADDED.search(text) is not None)
        added += int(ADDED.search(line).group(1))  # type: ignore[union-attr]
        syncs += 1
    assert added == total, lines.seen[-20:]
    return syncs


@pytest.fixture
def watcher_process(
    tmp_path: Path, cli_flags: list[str]
) -> Iterator[Callable[[Path], tuple[subprocess.Popen[str], Lines]]]:
    """Start ``mmrag watch FOLDER`` as a user does (stopped with SIGTERM, killed if left)."""
    started: list[subprocess.Popen[str]] = []

    def start(folder: Path) -> tuple[subprocess.Popen[str], Lines]:
        env = {**os.environ, "COLUMNS": "200"}
        env.pop("MMRAG_LOG_LEVEL", None)
        process = subprocess.Popen(
            [sys.executable, "-m", "mmrag", "watch", str(folder), "--quiet-s", "0.5",
             "--max-wait-s", "5", "--poll-s", "0.3", *cli_flags],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        started.append(process)
        assert process.stdout is not None
        return process, Lines(process.stdout)

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_watch_batches_a_burst_waits_for_a_vanished_folder_and_catches_up(
    tmp_path: Path, watcher_process, read_rows: Callable[[], dict[str, Record]]
) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    process, lines = watcher_process(lib)
    lines.expect(lambda text: text.startswith("watching "))
    files = [write_png(lib / f"d{i % 10}" / f"burst_{i:04d}.png", 1000 + i, side=16)
             for i in range(BURST)]
    syncs = added_until(lines, BURST)
    assert syncs <= 50  # batched: a few ingest jobs, not one per file

    away = tmp_path / "lib-away"
    os.rename(lib, away)  # the folder vanishes (as an unmounted disk does)
    lines.expect(lambda text: "is gone or cannot be listed" in text and "rows are kept" in text)
    os.rename(away, lib)
    lines.expect(lambda text: "is back; catching up" in text)
    files.append(write_png(lib / "late.png", 5000, side=16))
    assert added_until(lines, 1) == 1

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=WAIT_S) == 0
    lines.expect(lambda text: text == "stopped watching")
    assert not any("removed" in line and "removed 0" not in line for line in lines.seen)
    assert not any("rejected" in line for line in lines.seen), lines.seen
    rows = read_rows()
    assert len(rows) == BURST + 1
    assert sorted(r.source for r in rows.values()) == sorted(str(p) for p in files)


def test_a_restarted_watcher_catches_up_with_changes_made_while_it_was_stopped(
    tmp_path: Path, settings: Settings, tiny_embedder: Embedder, cli_flags: list[str],
    read_rows: Callable[[], dict[str, Record]], capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["watch", str(tmp_path / "no-such-folder"), *cli_flags]) == 2
    assert "is not a folder; create it or give another" in capsys.readouterr().err
    lib = tmp_path / "lib"
    kept, dropped = write_png(lib / "kept.png", 70), write_png(lib / "dropped.png", 71)
    components = build_components(settings)
    components._embedder = tiny_embedder
    options = WatchOptions(quiet_s=0.2, max_wait_s=2.0, poll_s=0.2)

    def watch_once(until: Callable[[list[str]], bool]) -> list[str]:
        """Run a watcher until its report lines satisfy ``until``, then stop it."""
        reported: list[str] = []
        ready = threading.Event()
        stop = threading.Event()

        def report(line: str) -> None:
            reported.append(line)
            if until(reported):
                ready.set()

        watcher = FolderWatcher(components, lib, report, watch=options)
        thread = threading.Thread(target=watcher.run, args=(stop,))
        thread.start()
        try:
            assert ready.wait(WAIT_S), reported
        finally:
            stop.set()
            thread.join()
        return reported

    watch_once(lambda seen: any(": added 2," in line for line in seen))
    dropped.unlink()  # while no watcher runs
    os.utime(kept, (1, 1))  # touched only: same content, no change of the row
    added = write_png(lib / "sub" / "added.png", 72)
    os.utime(added, (time.time() - 60, time.time() - 60))  # settled already
    lines = watch_once(lambda seen: any(": added 1," in line for line in seen))
    assert any("removed 1 file(s)" in line for line in lines), lines
    sources = sorted(r.source for r in read_rows().values())
    assert sources == sorted([str(kept), str(added)])
    components.close()


def test_serve_watch_keeps_the_served_collection_in_sync(
    tmp_path: Path, cli_flags: list[str]
) -> None:
    import httpx

    from tests.api.helpers import free_port

    lib = tmp_path / "lib"
    first, second = write_png(lib / "one.png", 80), write_png(lib / "two.png", 81)
    port = free_port()
    env = {**os.environ}
    env.pop("MMRAG_LOG_LEVEL", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "mmrag", "serve", "--port", str(port), "--watch", str(lib),
         *cli_flags],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    base = f"http://127.0.0.1:{port}"

    def sources() -> set[str] | None:
        """The served collection's sources (None while it cannot answer yet)."""
        try:
            answer = httpx.post(f"{base}/search", json={"query": "x", "k": 50,
                                                        "mode": "vector"}, timeout=30)
        except httpx.HTTPError:
            return None
        if answer.status_code != 200:
            return None
        return {hit["source"] for hit in answer.json()["hits"]}

    def served_becomes(wanted: set[str]) -> None:
        deadline = time.monotonic() + WAIT_S
        while sources() != wanted:
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            assert time.monotonic() < deadline, f"served {sources()}, not {wanted}"
            time.sleep(0.5)

    try:
        served_becomes({str(first), str(second)})  # the catch-up sync on start
        third = write_png(lib / "sub" / "three.png", 82)
        second.unlink()
        served_becomes({str(first), str(third)})
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=60)
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()
    # stopped, watcher threads included (uvicorn re-raises SIGTERM once it has shut down)
    assert server.returncode in (0, -signal.SIGTERM)
