"""mmrag collections: every collection at the configured Milvus, with count, model and index."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from mmrag.console import cell, markup_safe

if TYPE_CHECKING:
    from retrieval.config import Settings

# Store and rich imports live in run(): `mmrag --help` stays instant.


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Register the subcommand."""
    p = sub.add_parser(
        "collections",
        parents=[common],
        help="list the collections at --uri: count, model, dimension, index",
        description="List every collection at --uri (MMRAG_URI) with its item count, the model "
        "it was built with, the vector dimension and the index type; the configured collection "
        "(--collection, MMRAG_COLLECTION) is marked. Read-only: a missing .db file is reported, "
        "never created.",
    )
    p.add_argument("--json", action="store_true", help="print the collections as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Print one row per collection (or JSON)."""
    from rich.console import Console
    from rich.table import Table

    from mmrag.stores_read import open_existing_store
    from retrieval.errors import CollectionNotFoundError, StoreError, StoreUnavailableError

    rows: list[dict[str, Any]] = []
    with open_existing_store(settings, require_collection=False) as store:
        default = store.resolve() if store.exists() else settings.collection
        for name in store.list_collections():
            with open_existing_store(settings, name, require_collection=False) as one:
                try:
                    info: dict[str, Any] = one.info().as_dict()
                except StoreUnavailableError:
                    raise
                except (CollectionNotFoundError, StoreError):  # dropped meanwhile, or foreign
                    info = {"name": name, "count": None, "model": None, "dimension": None,
                            "index": None, "metric": None}
            rows.append({**info, "default": name in (default, settings.collection)})
    if args.json:
        print(json.dumps({"uri": settings.uri, "collections": rows}, ensure_ascii=False))
        return 0
    console = Console(highlight=False)
    if not rows:
        console.print(f"no collections at {markup_safe(settings.uri)}; create one with "
                      "mmrag ingest FOLDER")
        return 0
    table = Table("", "collection", "items", "model", "dim", "index", title_justify="left",
                  title=f"collections at {markup_safe(settings.uri)}")
    for row in rows:
        table.add_row(
            "*" if row["default"] else "", cell(row["name"]),
            "?" if row["count"] is None else str(row["count"]),
            cell(row["model"] or "(not made by mmrag)"),
            "" if row["dimension"] is None else str(row["dimension"]),
            cell(row["index"] or ""),
        )
    console.print(table)
    console.print(f"* the configured collection ({markup_safe(settings.collection)}); "
                  "pick another with --collection NAME or MMRAG_COLLECTION")
    return 0
