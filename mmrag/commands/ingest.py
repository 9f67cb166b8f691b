"""mmrag ingest SOURCE: embed every image of a source into the collection."""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from ingest import IngestOptions, run_ingest
from ingest.sources import open_source
from retrieval.components import build_components
from retrieval.config import Settings


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Register the subcommand."""
    p = sub.add_parser("ingest", parents=[common], help="embed images into the collection")
    p.add_argument("source", help="a directory of images")
    p.add_argument("--batch-size", type=int, default=None, help="images per model call")
    p.add_argument("--workers", type=int, default=2, help="parallel read/decode threads")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run the job and print its summary."""
    console = Console(stderr=True, quiet=args.quiet or args.json)
    options = IngestOptions(
        batch_size=args.batch_size or settings.batch_size,
        workers=args.workers,
        max_pixels=settings.max_image_pixels,
    )
    items = open_source(args.source)
    components = build_components(settings)
    try:
        with Progress(
            TextColumn("ingest"), BarColumn(), TextColumn("{task.completed} items"),
            TimeElapsedColumn(), console=console, transient=True,
        ) as progress:
            task = progress.add_task("ingest", total=None)
            summary = run_ingest(
                components, items, options, on_progress=lambda n: progress.advance(task, n)
            )
    finally:
        components.close()
    if args.json:
        print(json.dumps(summary.as_dict()))
        return 0
    out = Console(quiet=args.quiet)
    for reject in summary.rejects:
        out.print(f"[yellow]rejected[/] {reject.source}: {reject.reason}")
    out.print(
        f"ingested {summary.ingested}, duplicates skipped {summary.duplicates}, "
        f"rejected {summary.rejected} in {summary.elapsed_s:.1f}s "
        f"({summary.throughput:.1f} items/s) into {settings.collection!r} at {settings.uri}"
    )
    return 0
