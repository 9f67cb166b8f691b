"""mmrag sync DIR [--dry-run]: make the collection match a folder (added, moved, removed)."""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from mmrag.commands.arg_types import positive_int
from mmrag.console import printable

if TYPE_CHECKING:
    from ingest import IngestOptions
    from retrieval.config import Settings

# Model, store and rich imports live in run(): `mmrag --help` stays instant.


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Register the subcommand."""
    p = sub.add_parser(
        "sync",
        parents=[common],
        help="make the collection match a folder: add new files, follow moves, drop deleted",
        description="Sync a folder into the collection: new files are ingested (as mmrag "
        "ingest does), a renamed or moved file keeps its id and vector and gets its new path "
        "and file fields, and rows whose files under the folder are gone are removed. Rows of "
        "other folders are never touched. Same as mmrag ingest --sync DIR.",
    )
    p.add_argument("source", help="the folder to sync")
    add_sync_flags(p)
    p.add_argument("--batch-size", type=positive_int, help="images per model call (default 32)")
    p.add_argument(
        "--workers", type=positive_int, default=max(1, min(4, os.cpu_count() or 1)),
        help="decode/preprocess threads (default: CPU cores, at most 4)",
    )
    p.add_argument("--rejects", help="rejects JSONL file (default: next to the .db, or ./)")
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no report")
    p.set_defaults(run=run)


def add_sync_flags(p: argparse.ArgumentParser) -> None:
    """The flags mmrag sync shares with mmrag ingest --sync."""
    p.add_argument("--dry-run", action="store_true",
                   help="list what would be added, moved and removed; change nothing")
    p.add_argument("--allow-empty", action="store_true",
                   help="let a folder with no media files left remove every row under it "
                   "(refused by default: an unmounted disk looks the same)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Sync with the ingest defaults for what the flags leave out."""
    from ingest import IngestOptions

    if args.batch_size:
        settings = settings.model_copy(update={"batch_size": args.batch_size})
    options = IngestOptions(
        batch_size=settings.batch_size, workers=args.workers, max_pixels=settings.max_image_pixels
    )
    return sync_folder(args, settings, options)


def sync_folder(args: argparse.Namespace, settings: Settings, options: IngestOptions) -> int:
    """Plan, apply unless --dry-run, report; exit 0 (1 with --strict after rejects)."""
    from rich.console import Console

    from ingest.progress import ProgressBar
    from ingest.rejects import RejectsFile, default_rejects_path
    from ingest.sync import NewFiles, SyncReport, apply_sync, plan_sync, report_lines
    from retrieval.components import build_components

    if args.quiet:
        logging.getLogger().setLevel(logging.WARNING)
    root = Path(args.source).expanduser()
    components = build_components(settings, "create" if not args.dry_run else "open")
    try:
        plan = plan_sync(components.store, root, allow_empty=args.allow_empty)
        if args.dry_run:
            report = SyncReport(plan, dry_run=True)
        else:
            rejects_path = (Path(args.rejects).expanduser() if args.rejects
                            else default_rejects_path(settings.uri, settings.collection))
            rejects = RejectsFile(rejects_path) if plan.new else None
            console = Console(stderr=True, quiet=args.quiet or not plan.new)
            try:
                with ProgressBar(console, NewFiles(plan), "sync") as bar:
                    report = apply_sync(components, plan, options, progress=bar,
                                        rejects=rejects)
            finally:
                if rejects is not None:
                    rejects.close()
    finally:
        components.close()
    added = report.added
    code = 1 if getattr(args, "strict", False) and added is not None and added.rejected else 0
    if args.json:
        print(json.dumps({**report.as_dict(), "collection": settings.collection}))
    elif not args.quiet:
        for line in report_lines(report):
            print(printable(line))
    return code
