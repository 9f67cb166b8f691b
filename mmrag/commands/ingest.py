"""mmrag ingest SOURCE: embed every image (and sampled video frame) of a source."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmrag.commands.arg_types import non_negative_int, positive_float, positive_int
from mmrag.commands.sync import add_sync_flags
from mmrag.console import markup_safe, printable
from retrieval.errors import ConfigError

if TYPE_CHECKING:
    from ingest import IngestSummary, Shard
    from retrieval.config import Settings

# Model, store and rich imports live in run() and _report(): `mmrag --help` stays instant.
REJECTS_SHOWN = 10


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Register the subcommand."""
    p = sub.add_parser(
        "ingest",
        parents=[common],
        help="embed images, image URLs and video frames into the collection",
        description="Ingest a folder (recursive), a manifest (.csv .tsv .parquet .jsonl with a "
        "path or url column) or one image/video file. Safe to rerun: stored items are skipped.",
    )
    p.add_argument("source", help="folder, manifest file, or one image/video file")
    p.add_argument("--batch-size", type=positive_int, help="images per model call (default 32)")
    p.add_argument(
        "--workers", type=positive_int, default=max(1, min(4, os.cpu_count() or 1)),
        help="decode/preprocess threads (default: CPU cores, at most 4)",
    )
    p.add_argument(
        "--fetch-workers", type=positive_int, default=16,
        help="threads reading files and fetching URLs (default 16)",
    )
    p.add_argument(
        "--insert-batch-size", type=positive_int, default=256,
        help="rows per store write (default 256)",
    )
    p.add_argument("--shard", help="i/n: ingest only shard i (0-based) of n, by item key hash")
    p.add_argument("--rejects", help="rejects JSONL file (default: next to the .db, or ./)")
    p.add_argument("--strict", action="store_true", help="exit 1 if anything was rejected")
    p.add_argument(
        "--video-every", type=positive_float, default=2.0, metavar="SECONDS",
        help="sample one video frame every SECONDS (default 2)",
    )
    p.add_argument("--max-pixels", type=positive_int, help="decompression-bomb cap (50000000)")
    p.add_argument(
        "--max-bytes", type=positive_int,
        help="largest file or download accepted, in bytes (default 50 MiB)",
    )
    p.add_argument(
        "--timeout", type=positive_float, default=30.0, metavar="SECONDS",
        help="per-attempt limit for one URL download (default 30)",
    )
    p.add_argument(
        "--retries", type=non_negative_int, default=3,
        help="extra attempts for URLs on connection errors, timeouts, 429 and 5xx (default 3)",
    )
    p.add_argument(
        "--engine", choices=("local", "ray"), default="local",
        help="local: threads in this process (default); ray: Ray Data over a cluster, writing "
        "to a Milvus server (pip install 'mmrag[ray]')",
    )
    p.add_argument("--address", help="Ray cluster (ray://head:10001 or auto; default: local Ray)")
    p.add_argument(
        "--model-actors", type=positive_int,
        help="Ray: model replicas (default: one per GPU of the cluster, else 1)",
    )
    p.add_argument(
        "--text-columns",
        help="manifest columns to index for keyword and hybrid search beside the caption and "
        "file name, e.g. title,sku (set when the collection is created)",
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no summary")
    p.add_argument("--sync", action="store_true",
                   help="a folder: also follow moved files and remove rows of deleted ones "
                   "(mmrag sync DIR)")
    add_sync_flags(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run the job; exit 0, or 1 with --strict when something was rejected."""
    from rich.console import Console

    from ingest import IngestOptions, Shard, open_source, run_ingest
    from ingest.fetch import FetchOptions
    from ingest.progress import ProgressBar
    from ingest.rejects import RejectsFile, default_rejects_path
    from retrieval.components import build_components
    from retrieval.errors import StoreUnavailableError
    from retrieval.image_rows import DEFAULT_MAX_BYTES

    if args.quiet:
        logging.getLogger().setLevel(logging.WARNING)
    _check_sync_flags(args)
    shard = Shard.parse(args.shard) if args.shard else Shard()
    source = open_source(args.source, shard)  # manifests are read and checked here
    if args.batch_size:
        settings = settings.model_copy(update={"batch_size": args.batch_size})
    options = IngestOptions(
        batch_size=settings.batch_size,
        workers=args.workers,
        fetch_workers=args.fetch_workers,
        insert_batch_size=args.insert_batch_size,
        max_pixels=args.max_pixels or settings.max_image_pixels,
        max_bytes=args.max_bytes or DEFAULT_MAX_BYTES,
        video_every_s=args.video_every,
        fetch=FetchOptions(
            timeout_s=args.timeout, retries=args.retries,
            max_bytes=args.max_bytes or DEFAULT_MAX_BYTES,
        ),
    )
    if args.sync:
        from mmrag.commands.sync import sync_folder

        return sync_folder(args, settings, options)
    rejects_path = (
        Path(args.rejects).expanduser()
        if args.rejects
        else default_rejects_path(settings.uri, settings.collection, shard)
    )
    if args.engine == "ray":
        from ingest.ray_engine import RayOptions, check_ray_settings, run_ray_ingest

        check_ray_settings(settings, local=not args.address)  # before the rejects file is truncated
    components = build_components(settings) if args.engine == "local" else None
    if args.text_columns:
        _create_with_text_columns(settings, components, args.text_columns)
    rejects = RejectsFile(rejects_path)
    console = Console(stderr=True, quiet=args.quiet)
    try:
        with ProgressBar(console, source) as bar:
            if components is None:
                ray_options = RayOptions(address=args.address, model_actors=args.model_actors)
                summary = run_ray_ingest(settings, source, options, ray_options, bar, rejects)
            else:
                summary = run_ingest(components, source, options, progress=bar, rejects=rejects)
    except StoreUnavailableError as exc:
        raise StoreUnavailableError(
            f"{exc}. What was written is kept: once Milvus answers again, run the same command "
            "to finish (it skips what is already stored)."
        ) from exc
    finally:
        rejects.close()
        if components is not None:
            components.close()
    code = 1 if args.strict and summary.rejected else 0
    _report(args, settings, shard, summary, code)
    return code


def _create_with_text_columns(settings: Settings, components: Any, columns: str) -> None:
    """Create the collection with these text columns indexed (or check an existing one)."""
    from retrieval.components import build_components
    from retrieval.model_spec import spec_from_settings

    own = components is None  # the Ray engine builds its own components later
    parts = build_components(settings) if own else components
    done = False
    try:
        embedder = parts.embedder
        parts.store.ensure_collection(
            embedder.dim, embedder.model_id, spec=spec_from_settings(settings),
            text_columns=[c for c in columns.split(",") if c.strip()],
        )
        done = True
    finally:
        if own or not done:  # a refusal ends the command: release the store now
            parts.close()


def _check_sync_flags(args: argparse.Namespace) -> None:
    """--sync takes a folder on the local engine, whole (no shard); --dry-run needs --sync."""
    if (args.dry_run or args.allow_empty) and not args.sync:
        raise ConfigError("--dry-run and --allow-empty go with --sync (or use mmrag sync DIR)")
    if args.sync and (args.shard or args.engine != "local" or not Path(args.source).is_dir()):
        raise ConfigError("--sync syncs one folder, whole, on the local engine: give a folder "
                          "and leave out --shard and --engine ray")


def _report(
    args: argparse.Namespace, settings: Settings, shard: Shard, summary: IngestSummary, code: int
) -> None:
    """Print the summary: JSON, a few human lines, or (quiet) only a failing --strict."""
    if args.json:
        payload: dict[str, Any] = {
            **summary.as_dict(),
            "source": args.source,
            "collection": settings.collection,
            "shard": shard.label,
        }
        print(json.dumps(payload))
        return
    if args.quiet:
        if code:
            print(
                f"mmrag ingest: {summary.rejected} item(s) rejected; see "
                f"{printable(summary.rejects_file)}",
                file=sys.stderr,
            )
        return
    from rich.console import Console

    from ingest.sources import IMAGE_EXTENSIONS, TEXT_EXTENSIONS, VIDEO_EXTENSIONS

    out = Console(highlight=False, soft_wrap=True)
    for reject in summary.rejects[:REJECTS_SHOWN]:
        out.print(f"[yellow]rejected[/] ({reject.stage}) {markup_safe(reject.source)}: "
                  f"{markup_safe(reject.reason)}")
    if summary.rejected > REJECTS_SHOWN:
        out.print(f"... and {summary.rejected - REJECTS_SHOWN} more")
    shard_note = f" (shard {shard.label})" if shard.count > 1 else ""
    out.print(
        f"ingested {summary.ingested}, duplicates skipped {summary.duplicates}, "
        f"rejected {summary.rejected} in {summary.elapsed_s:.1f}s "
        f"({summary.throughput:.1f} items/s) into {markup_safe(repr(settings.collection))} "
        f"at {markup_safe(settings.uri)}{shard_note}"
    )
    if summary.skipped:
        out.print(f"{markup_safe(summary.skipped_text())} (not an image, video or text type "
                  "mmrag ingests)")
    if not summary.scanned:
        readable = IMAGE_EXTENSIONS | VIDEO_EXTENSIONS | TEXT_EXTENSIONS
        out.print(f"nothing to ingest: {markup_safe(args.source)} has no image, video or text "
                  f"files{' for this shard' if shard.count > 1 else ''}; mmrag reads "
                  f"{', '.join(sorted(readable))}; add some, or "
                  "give another folder or a manifest")
    if summary.passages_removed:
        out.print(f"{summary.passages_removed} passage(s) of edited documents' older text were "
                  "removed (their new passages replace them)")
    if summary.text_recoded:
        example = f", e.g. {markup_safe(summary.recoded[0])}" if summary.recoded else ""
        out.print(
            f"[yellow]warning[/] {summary.text_recoded} text document(s) were not valid UTF-8 "
            f"and were decoded with U+FFFD replacement characters{example}"
        )
    if summary.captions_truncated:
        from retrieval.stores.milvus_rows import MAX_CAPTION_BYTES

        example = f", e.g. {markup_safe(summary.truncated[0])}" if summary.truncated else ""
        out.print(
            f"[yellow]warning[/] {summary.captions_truncated} caption(s) were longer than the "
            f"caption field ({MAX_CAPTION_BYTES} bytes of UTF-8) and were stored truncated"
            f"{example}; keep the full text in another manifest column to store it as metadata"
        )
    if summary.rejected:
        out.print(f"rejects: {markup_safe(summary.rejects_file)}")
