"""mmrag duplicates: groups of near-identical images (resized, recompressed, cropped copies)."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from mmrag.console import printable
from retrieval.errors import ConfigError

if TYPE_CHECKING:
    from retrieval.config import Settings
    from retrieval.duplicates import DuplicatePage

# Store imports live in run(): `mmrag --help` stays instant.
DEFAULT_THRESHOLD = 0.95  # retrieval.duplicates.DEFAULT_THRESHOLD (not imported: light module)
MAX_PAGE_SIZE = 100  # retrieval.duplicates.MAX_PAGE_SIZE


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Register the subcommand."""
    p = sub.add_parser(
        "duplicates",
        parents=[common],
        help="groups of near-identical images (Milvus range search)",
        description="Find groups of near-identical images in the collection: every stored "
        "image is range-searched once for neighbours scoring at least --threshold (cosine "
        "similarity of the stored vectors), and images linked by such pairs form a group. "
        "Groups are listed largest first, --limit a page. Read-only.",
    )
    p.add_argument(
        "--threshold", type=float, default=DEFAULT_THRESHOLD,
        help=f"similarity a pair needs, within (0, 1] (default {DEFAULT_THRESHOLD}; lower "
        "finds more heavily edited copies, 1 only identical vectors)",
    )
    p.add_argument("--limit", type=int, default=20, help="groups per page (default 20)")
    p.add_argument("--page", type=int, default=1, help="which page of groups (default 1)")
    p.add_argument("--json", action="store_true", help="print the page as JSON")
    p.set_defaults(run=run)


def page_dict(page: DuplicatePage) -> dict[str, Any]:
    """JSON-ready page (the API's shape)."""
    return {
        "threshold": page.threshold,
        "page": page.page,
        "page_size": page.page_size,
        "total_groups": page.total_groups,
        "total_images": page.total_images,
        "scanned": page.scanned,
        "groups": [
            {
                "size": len(group.members),
                "min_score": round(group.min_score, 6),
                "max_score": round(group.max_score, 6),
                "members": [vars(member) for member in group.members],
            }
            for group in page.groups
        ],
    }


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Scan the collection and print one page of duplicate groups."""
    from mmrag.stores_read import open_existing_store
    from retrieval.duplicates import check_paging, check_threshold, duplicate_page

    check_threshold(args.threshold)
    if not 1 <= args.limit <= MAX_PAGE_SIZE:
        raise ConfigError(f"--limit must be within 1..{MAX_PAGE_SIZE}, got {args.limit}")
    if args.page < 1:
        raise ConfigError(f"--page must be 1 or more, got {args.page}")
    check_paging(args.page, args.limit)
    with open_existing_store(settings) as store:
        page = duplicate_page(store, args.threshold, page=args.page, page_size=args.limit)
    if args.json:
        print(json.dumps(page_dict(page), ensure_ascii=False))
        return 0
    print_page(page)
    return 0


def print_page(page: DuplicatePage) -> None:
    """The groups, one block each, and a line saying how many there are in all."""
    if not page.total_groups:
        print(
            f"no near-duplicates among {page.scanned} images at threshold {page.threshold:g} "
            "(a lower --threshold finds more heavily edited copies)"
        )
        return
    first = (page.page - 1) * page.page_size
    for number, group in enumerate(page.groups, start=first + 1):
        print(
            f"group {number}: {len(group.members)} images, similarity "
            f"{group.min_score:.4f}..{group.max_score:.4f}"
        )
        for member in group.members:
            caption = f"  {printable(member.caption)}" if member.caption else ""
            print(f"  {printable(member.id)}  {printable(member.source)}{caption}")
    shown = f"groups {first + 1}-{first + len(page.groups)}" if page.groups else "no groups"
    more = ""
    if first + len(page.groups) < page.total_groups:
        more = f"; --page {page.page + 1} for more"
    print(
        f"{shown} of {page.total_groups} ({page.total_images} images in groups, "
        f"{page.scanned} scanned, threshold {page.threshold:g}){more}"
    )
