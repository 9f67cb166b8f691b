"""mmrag stats: what one collection holds: items, model, dimension, index and filterable fields."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from mmrag.console import cell, markup_safe

if TYPE_CHECKING:
    from rich.console import Console

    from retrieval.config import Settings

# Store and rich imports live in run(): `mmrag --help` stays instant.
VALUES_SHOWN = 8


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Register the subcommand."""
    p = sub.add_parser(
        "stats",
        parents=[common],
        help="one collection: items, model, dimension, index and filterable fields",
        description="Describe the configured collection (--collection, MMRAG_COLLECTION): item "
        "count, the collection a reindexed name reads, the model it was built with and the "
        "flags that select it, dimension, index, metric, and the fields --filter accepts with "
        "their value types and (when few) values, sampled from the stored rows. Read-only.",
    )
    p.add_argument("--json", action="store_true", help="print the statistics as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Print the collection's figures and fields (or JSON)."""
    from rich.console import Console

    from mmrag.stores_read import open_existing_store
    from retrieval.fields import sample_fields
    from retrieval.follow_model import spec_flags

    with open_existing_store(settings) as store:
        info = store.info()
        spec = store.model_spec()
        sample = sample_fields(store) if info.count else None
        stats: dict[str, Any] = {
            **info.as_dict(),
            "name": settings.collection,
            "reads": store.resolve(),
            "model_spec": spec,
            "model_flags": spec_flags(spec) if spec else None,
            "sampled_rows": sample.rows if sample else 0,
            "fields": [vars(f) for f in sample.fields] if sample else [],
        }
    if args.json:
        print(json.dumps(stats, ensure_ascii=False, default=str))
        return 0
    print_stats(stats, Console(highlight=False))
    return 0


def print_stats(stats: dict[str, Any], console: Console) -> None:
    """The figures as lines, then the fields as a table."""
    from rich.table import Table

    name = markup_safe(stats["name"])
    reads = stats["reads"]
    moved = f" (reads {markup_safe(reads)})" if reads != stats["name"] else ""
    console.print(f"[bold]{name}[/]{moved}: {stats['count']} items")
    console.print(f"  model      {markup_safe(stats['model'])}")
    if stats["model_flags"]:
        console.print(f"  query with {markup_safe(stats['model_flags'])}")
    console.print(f"  dimension  {stats['dimension']}")
    console.print(f"  index      {markup_safe(stats['index'])} ({markup_safe(stats['metric'])})")
    if not stats["count"]:
        console.print("  the collection is empty: add images with mmrag ingest FOLDER")
        return
    table = Table("field", "kind", "types", "values", title_justify="left",
                  title=f"fields for --filter (sampled from {stats['sampled_rows']} rows)")
    for field in stats["fields"]:
        values = field["values"]
        shown = "many" if values is None else ", ".join(map(str, values[:VALUES_SHOWN]))
        if values is not None and len(values) > VALUES_SHOWN:
            shown += f", ... ({len(values)} values)"
        table.add_row(cell(field["name"]), field["kind"], ", ".join(field["types"]), cell(shown))
    console.print(table)
