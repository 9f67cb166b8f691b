"""mmrag migrate --from ./mmrag.db --to http://host:19530: copy a collection, no re-embedding."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from mmrag.commands.arg_types import positive_int
from mmrag.console import markup_safe
from retrieval.limits import MAX_TOPK

if TYPE_CHECKING:
    from retrieval.config import Settings
    from retrieval.migrate import MigrateReport

# Store and rich imports live in run() and _report(): `mmrag --help` stays instant.


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Register the subcommand."""
    p = sub.add_parser(
        "migrate",
        parents=[common],
        help="copy a collection to another Milvus (e.g. Lite file -> server), no re-embedding",
        description="Copy vectors and fields of --collection (MMRAG_COLLECTION) from --from to "
        "--to in batches. Rows already in the target are skipped, so an interrupted migration "
        "resumes when rerun. The target must be empty or hold the same model. At the end, "
        "every source id is checked in the target and a random sample of rows is compared "
        "(fields equal, vector cosine >= 0.9999); exit 1 if that fails.",
    )
    p.add_argument("--from", dest="from_uri", required=True,
                   help="source: a Milvus Lite .db file or http(s)://host:19530")
    p.add_argument("--to", dest="to_uri", required=True,
                   help="target: http(s)://host:19530 or a Milvus Lite .db file")
    p.add_argument("--to-collection", help="target collection name (default: the same)")
    p.add_argument("--to-token", help="target server token (default MMRAG_TOKEN)")
    p.add_argument("--index-type", help="index of a new target collection (MMRAG_INDEX_TYPE)")
    p.add_argument("--batch-size", type=positive_int, default=1000, help="rows per batch (1000)")
    p.add_argument("--verify-sample", type=int, default=200,
                   help="rows compared at the end (default 200)")
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Copy and verify; exit 0 when verified, 1 otherwise."""
    from rich.console import Console

    from retrieval.migrate import migrate

    console = Console(stderr=True, quiet=args.json)
    done = 0

    def progress(n: int) -> None:
        nonlocal done
        done += n
        console.print(f"checked {done} rows...", end="\r")

    report = migrate(
        args.from_uri,
        args.to_uri,
        settings.collection,
        to_collection=args.to_collection,
        token=settings.token,
        to_token=args.to_token or settings.token,
        index_type=args.index_type or settings.index_type,
        batch_size=min(args.batch_size, MAX_TOPK),
        sample=max(0, args.verify_sample),
        progress=progress,
    )
    _report(args, settings, report)
    return 0 if report.verified else 1


def _report(args: argparse.Namespace, settings: Settings, report: MigrateReport) -> None:
    """Print the report."""
    target = args.to_collection or settings.collection
    if args.json:
        print(json.dumps({**report.as_dict(), "collection": settings.collection,
                          "to_collection": target}))
        return
    from rich.console import Console

    out = Console(highlight=False, soft_wrap=True)
    out.print(
        f"{markup_safe(settings.collection)} -> {markup_safe(args.to_uri)} {markup_safe(target)}: "
        f"copied {report.copied}, already there {report.skipped}, source {report.source_count}, "
        f"target {report.target_count} rows, in {report.elapsed_s:.1f}s"
    )
    if report.verified:
        out.print(f"verified: every id present; {report.sampled} sampled rows identical "
                  f"(min cosine {report.min_cosine:.6f})")
        return
    print(
        f"mmrag migrate: verification failed: {len(report.missing)} id(s) missing "
        f"(e.g. {report.missing[:3]}), {len(report.mismatched)} sampled row(s) differ "
        f"(e.g. {report.mismatched[:3]}); rerun to copy what is missing",
        file=sys.stderr,
    )
