"""mmrag delete ID... | --filter JSON [--yes] [--dry-run]: remove items from the collection."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from mmrag.console import printable
from retrieval.errors import ConfigError

if TYPE_CHECKING:
    from retrieval.config import Settings
    from retrieval.stores.base import VectorStore

# Store imports live in run(): `mmrag --help` stays instant.
EVERY_ROW = 'id != ""'  # stored ids are never empty: the expression of an empty filter
SHOWN = 10


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Register the subcommand."""
    p = sub.add_parser(
        "delete",
        parents=[common],
        help="remove items by id, or every item a filter matches",
        description="Remove items from the collection: the ids given, or with --filter every "
        "item the filter matches (the filter language of mmrag search --filter; '{}' matches "
        "every item). A filtered delete asks first on a terminal; elsewhere it needs --yes. "
        "--dry-run shows what would go and changes nothing.",
    )
    p.add_argument("ids", nargs="*", metavar="ID", help="ids of stored items (mmrag search "
                   "--json shows them)")
    p.add_argument("--filter", help='structured filter as JSON, e.g. \'{"folder": "2019"}\'')
    p.add_argument("--yes", action="store_true", help="delete what the filter matches without "
                   "asking")
    p.add_argument("--dry-run", action="store_true", help="show what would be deleted; change "
                   "nothing")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Delete; exit 0, or 1 when an id given was not stored (the others are deleted)."""
    from mmrag.stores_read import open_existing_store

    if bool(args.ids) == (args.filter is not None):
        raise ConfigError("give the ids to delete, or --filter JSON (not both); see "
                          "mmrag delete --help")
    with open_existing_store(settings) as store:
        if args.ids:
            return _delete_ids(args, settings, store)
        return _delete_filtered(args, settings, store)


def _delete_ids(args: argparse.Namespace, settings: Settings, store: VectorStore) -> int:
    """Delete the ids that are stored; name the ones that are not."""
    wanted = list(dict.fromkeys(args.ids))
    found = store.existing_ids(wanted)
    missing = [i for i in wanted if i not in found]
    deleted = [i for i in wanted if i in found]
    if deleted and not args.dry_run:
        store.delete(deleted)
        store.flush()
    _print(args, settings, store, deleted, missing)
    return 1 if missing else 0


def _delete_filtered(args: argparse.Namespace, settings: Settings, store: VectorStore) -> int:
    """Delete what the filter matches, after the confirmation (a prompt or --yes)."""
    from mmrag.commands.search import parse_filter

    expr = parse_filter(args.filter, store) or EVERY_ROW
    matched = [r for batch in store.iterate_where(expr, 1000) for r in batch]
    total = store.count()
    everything = " (every item of the collection)" if matched and len(matched) == total else ""
    name = f"{settings.collection!r} at {store.where}"
    if not matched or args.dry_run:
        _print(args, settings, store, [r.id for r in matched], [], sources=[
            r.source for r in matched])
        return 0
    if not args.yes:
        question = f"delete {len(matched)} item(s){everything} from {name}? [y/N] "
        if not sys.stdin.isatty():
            raise ConfigError(
                f"the filter matches {len(matched)} item(s){everything} of {name}; run again "
                "with --yes to delete them (or --dry-run to list them)"
            )
        if input(printable(question)).strip().lower() not in ("y", "yes"):
            print("nothing deleted")
            return 0
    count = store.delete_where(expr)
    store.flush()
    _print(args, settings, store, [r.id for r in matched][:count], [])
    return 0


def _print(
    args: argparse.Namespace, settings: Settings, store: VectorStore, ids: list[str],
    missing: list[str], *, sources: list[str] | None = None,
) -> None:
    """The outcome: JSON, or a line or two."""
    verb = "would delete" if args.dry_run else "deleted"
    if args.json:
        print(json.dumps({
            "collection": settings.collection, "dry_run": args.dry_run,
            "deleted" if not args.dry_run else "matched": len(ids), "ids": ids,
            "not_found": missing,
        }))
        return
    if args.dry_run and sources:
        for item_id, source in list(zip(ids, sources, strict=True))[:SHOWN]:
            print(printable(f"  {item_id}  {source}"))
        if len(ids) > SHOWN:
            print(f"  ... and {len(ids) - SHOWN} more")
    print(printable(f"{verb} {len(ids)} item(s) from {settings.collection!r} at {store.where}"))
    if missing:
        shown = ", ".join(missing[:SHOWN]) + (" ..." if len(missing) > SHOWN else "")
        print(printable(f"not found: {shown} (no such id in the collection; nothing was deleted "
                        "for them)"), file=sys.stderr)
