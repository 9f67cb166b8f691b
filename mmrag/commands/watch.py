"""mmrag watch DIR: keep the collection in sync with a folder as files come and go."""

from __future__ import annotations

import argparse
import os
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from mmrag.commands.arg_types import positive_float
from mmrag.console import printable
from retrieval.errors import ConfigError, MmragError

if TYPE_CHECKING:
    from retrieval.config import Settings

# Model, store and watchdog imports live in run(): `mmrag --help` stays instant.


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Register the subcommand."""
    p = sub.add_parser(
        "watch",
        parents=[common],
        help="keep the collection in sync with a folder as files are added, moved, removed",
        description="Sync the folder (mmrag sync) once to catch up, then again after each "
        "batch of file system events, debounced: a burst of new files becomes a few ingest "
        "jobs. A folder that disappears removes nothing: the watcher says so and waits for "
        "it to come back. Ctrl-C (or SIGTERM) stops after the sync in progress.",
    )
    p.add_argument("source", help="the folder to watch")
    p.add_argument("--quiet-s", type=positive_float, default=1.0, metavar="SECONDS",
                   help="sync once no event came for SECONDS (default 1)")
    p.add_argument("--max-wait-s", type=positive_float, default=10.0, metavar="SECONDS",
                   help="...or SECONDS after the first event of a batch (default 10)")
    p.add_argument("--poll-s", type=positive_float, default=2.0, metavar="SECONDS",
                   help="how often a vanished folder is looked for again (default 2)")
    p.add_argument(
        "--workers", type=int, default=max(1, min(4, os.cpu_count() or 1)),
        help="decode/preprocess threads (default: CPU cores, at most 4)",
    )
    p.add_argument("--rejects", help="rejects JSONL file (default: next to the .db, or ./)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Watch until Ctrl-C or SIGTERM."""
    from ingest import IngestOptions
    from ingest.rejects import RejectsFile, default_rejects_path
    from ingest.watch import FolderWatcher, WatchOptions
    from retrieval.components import build_components

    root = Path(args.source).expanduser()
    if not root.is_dir():
        raise ConfigError(f"watch folder {args.source!r} is not a folder; create it or give "
                          "another (once watched, a folder that goes away is waited for)")
    stop = threading.Event()
    stopped = threading.Event()  # asked to stop (not the watch thread's end)

    def request_stop(*_: object) -> None:
        stopped.set()
        stop.set()

    watch = WatchOptions(quiet_s=args.quiet_s, max_wait_s=args.max_wait_s, poll_s=args.poll_s)
    options = IngestOptions(batch_size=settings.batch_size, workers=max(1, args.workers),
                            max_pixels=settings.max_image_pixels)
    rejects_path = (Path(args.rejects).expanduser() if args.rejects
                    else default_rejects_path(settings.uri, settings.collection))
    components = build_components(settings)
    rejects = RejectsFile(rejects_path)
    failure: list[MmragError] = []

    def watch_until_stopped() -> None:
        try:
            watcher.run(stop)
        except MmragError as exc:  # handed to the main thread, which reports it
            failure.append(exc)

    previous = {signum: signal.signal(signum, request_stop)
                for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        watcher = FolderWatcher(
            components, root, lambda line: print(printable(line), flush=True),
            options=options, watch=watch, rejects=rejects,
        )
        print(printable(f"watching {watcher.root} into {settings.collection!r} at "
                        f"{components.store.where} (Ctrl-C stops)"), flush=True)
        thread = threading.Thread(target=watch_until_stopped, name="mmrag-watch")
        thread.start()
        while thread.is_alive():
            thread.join(0.5)
    finally:
        stop.set()
        rejects.close()
        components.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if failure:
        raise failure[0]
    if not stopped.is_set():  # the watch thread died of a bug (its traceback is printed)
        return 1
    print("stopped watching", flush=True)
    return 0
