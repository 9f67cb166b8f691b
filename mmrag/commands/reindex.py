"""mmrag reindex --model NAME [--pretrained TAG | --checkpoint PATH]: swap models, no downtime;
mmrag reindex --add-text-index [--text-columns a,b]: add the BM25 text index, no re-embedding."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from mmrag.commands.arg_types import positive_int
from mmrag.console import markup_safe, printable
from retrieval.errors import ConfigError

if TYPE_CHECKING:
    from ingest.reindex import ReindexSummary
    from retrieval.config import Settings

# Model, store and rich imports live in run() and _report(): `mmrag --help` stays instant.


def _seconds(text: str) -> float:
    value = float(text)
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds, not {text}")
    return value


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Register the subcommand."""
    p = sub.add_parser(
        "reindex",
        parents=[common],
        help="re-embed the collection with another model, then switch to it without downtime",
        description="Re-embed every stored item from its stored source (file, URL, video frame "
        "or caption) with the model named by --model/--pretrained/--checkpoint into a new "
        "collection (<collection>_vN), then point the configured name at it: a Milvus server "
        "alias is altered atomically (a real collection is first renamed to <collection>_v1 "
        "and aliased); Milvus Lite gets a pointer file next to the .db (stop `mmrag serve` "
        "first: Lite files are owned by one process). The search API follows the switch and "
        "embeds queries with the model the collection records. Resumable: rerun to continue. "
        "With --add-text-index, rows are copied with their stored vectors (nothing is "
        "embedded again) into a collection with the BM25 text index for keyword and hybrid "
        "search, and the name moves the same way.",
    )
    p.add_argument(
        "--add-text-index", action="store_true",
        help="copy the collection with its vectors into one with the BM25 text index (keyword "
        "and hybrid search; Milvus 2.5+ or Milvus Lite), then switch to it",
    )
    p.add_argument(
        "--text-columns", help="with --add-text-index: metadata columns to index beside the "
        "caption and file name, e.g. title,sku",
    )
    p.add_argument("--target", help="name of the new collection (default <collection>_vN)")
    p.add_argument("--batch-size", type=positive_int, default=256, help="rows per batch (256)")
    p.add_argument("--workers", type=positive_int, default=4, help="read/decode threads (4)")
    p.add_argument(
        "--allow-missing", action="store_true",
        help="switch even when some sources could not be read (they are left out)",
    )
    p.add_argument("--drop-old", action="store_true", help="drop the old collection at the end")
    p.add_argument(
        "--grace", type=_seconds, default=10.0, metavar="SECONDS",
        help="wait this long after the switch before --drop-old drops (default 10)",
    )
    p.add_argument("--force", action="store_true", help="rebuild even with the same model")
    p.add_argument("--rejects", help="rejects JSONL file (default: next to the .db, or ./)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Rebuild and switch; exit 1 when sources were missing and nothing was switched."""
    from rich.console import Console

    from ingest.reindex import ReindexOptions, reindex
    from ingest.rejects import RejectsFile, default_rejects_path
    from retrieval.embedders import create_embedder_from_settings

    if args.add_text_index:
        return _add_text_index(args, settings)
    if args.text_columns:
        raise ConfigError("--text-columns goes with --add-text-index (or mmrag ingest)")
    if args.pretrained and not args.checkpoint:
        settings = settings.model_copy(update={"checkpoint": None})  # the tag names the weights
    if args.checkpoint and args.pretrained:
        raise ConfigError("give --pretrained TAG or --checkpoint PATH, not both")
    embedder = create_embedder_from_settings(settings)
    options = ReindexOptions(
        target=args.target,
        batch_size=args.batch_size,
        workers=args.workers,
        max_pixels=settings.max_image_pixels,
        allow_missing=args.allow_missing,
        drop_old=args.drop_old,
        grace_s=args.grace,
        force=args.force,
    )
    path = Path(args.rejects) if args.rejects else default_rejects_path(
        settings.uri, f"{settings.collection}-reindex"
    )
    rejects = RejectsFile(path)
    console = Console(stderr=True)
    done = 0

    def progress(n: int) -> None:
        nonlocal done
        done += n
        if not args.json:
            console.print(f"re-embedded {done} rows...", end="\r")

    try:
        summary = reindex(settings, embedder, options, rejects, progress)
    finally:
        rejects.close()
    _report(args, summary, path)
    return 0 if summary.switched else 1


def _add_text_index(args: argparse.Namespace, settings: Settings) -> int:
    """Copy into a collection with the text index and switch (no model is loaded)."""
    from rich.console import Console

    from ingest.reindex import ReindexOptions, add_text_index

    columns = [c for c in (args.text_columns or "").split(",") if c.strip()]
    options = ReindexOptions(
        target=args.target, batch_size=args.batch_size, drop_old=args.drop_old,
        grace_s=args.grace, force=args.force,
    )
    console = Console(stderr=True)
    done = 0

    def progress(n: int) -> None:
        nonlocal done
        done += n
        if not args.json:
            console.print(f"copied {done} rows...", end="\r")

    summary = add_text_index(settings, columns, options, progress)
    if args.json:
        print(json.dumps(summary.as_dict()))
        return 0
    out = Console(highlight=False, soft_wrap=True)
    indexed = ", ".join(["caption", "file name", *(summary.text_columns or ())])
    out.print(
        f"{markup_safe(summary.new_collection)}: {summary.copied} rows copied with their "
        f"vectors ({summary.skipped} already there), text index over {markup_safe(indexed)}, "
        f"in {summary.elapsed_s:.1f}s"
    )
    out.print(
        f"{markup_safe(summary.name)} now reads {markup_safe(summary.new_collection)} "
        f"(was {markup_safe(summary.old_collection)}): keyword and hybrid search work on it"
        + ("; old collection dropped" if summary.dropped_old else "")
    )
    return 0


def _report(args: argparse.Namespace, summary: ReindexSummary, rejects: Path) -> None:
    """Print the summary as JSON or a few lines."""
    if args.json:
        print(json.dumps({**summary.as_dict(), "rejects_file": str(rejects)}))
        return
    from rich.console import Console

    out = Console(highlight=False, soft_wrap=True)
    out.print(
        f"{markup_safe(summary.new_collection)}: {summary.embedded} re-embedded with "
        f"{markup_safe(summary.new_model)} (dim {summary.dim}), {summary.skipped} already there, "
        f"{summary.rejected} missing, in {summary.elapsed_s:.1f}s"
    )
    if summary.switched:
        out.print(
            f"{markup_safe(summary.name)} now reads {markup_safe(summary.new_collection)} "
            f"(was {markup_safe(summary.old_collection)}, model {markup_safe(summary.old_model)})"
            + ("; old collection dropped" if summary.dropped_old else "")
        )
        return
    for source, reason in summary.rejects[:10]:
        out.print(f"[yellow]missing[/] {markup_safe(source)}: {markup_safe(reason)}")
    print(
        f"mmrag reindex: {summary.rejected} source(s) could not be re-embedded (see "
        f"{printable(rejects)}); {printable(summary.name)} still reads "
        f"{printable(summary.old_collection)}. Fix them and rerun, or pass "
        "--allow-missing to switch without them.",
        file=sys.stderr,
    )
