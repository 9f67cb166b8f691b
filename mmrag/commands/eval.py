"""mmrag eval QUERIES: recall@1/5/10, P@5, MRR and nDCG@10 of a collection on labelled queries."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from retrieval.config import Settings

# Model, store and rich imports live in run(): `mmrag --help` stays instant.


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Register the subcommand."""
    p = sub.add_parser(
        "eval",
        parents=[common],
        help="retrieval quality of a collection on your labelled queries",
        description="Score text→image and image→image retrieval on a queries file (JSONL, or "
        'CSV/TSV): one {"query": "text"} or {"image": "path"} per line with "relevant": [ids] '
        'and/or "relevant_where": {metadata key: value}. Reports recall@1/5/10, precision@5, '
        "MRR and nDCG@10 (binary gains) over the top 10. An image query's own stored copy is "
        "left out of its ranking unless --keep-self.",
    )
    p.add_argument("queries", help="queries file (.jsonl, .csv or .tsv)")
    p.add_argument(
        "--exact", action="store_true",
        help="also rank by brute force over every stored vector: ANN recall@10 and exact metrics",
    )
    p.add_argument(
        "--keep-self", action="store_true",
        help="let an image query find its own stored copy (left out by default)",
    )
    p.add_argument("--per-query", action="store_true", help="list every query's metrics")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Evaluate and print a table (or JSON)."""
    from rich.console import Console

    from mmrag.eval_report import print_report
    from retrieval.components import build_components
    from retrieval.evaluation import EvalOptions, evaluate, load_queries
    from retrieval.follow_model import check_query_model, query_embedder
    from retrieval.search import Searcher

    queries = load_queries(args.queries)
    components = build_components(settings, access="read")  # creates nothing
    try:
        # a reindexed (moved) name is read with its new model; a plain one with the configured
        embedder = query_embedder(components)
        check_query_model(Searcher(embedder, components.store))
        report = evaluate(
            embedder,
            components.store,
            queries,
            EvalOptions(exact=args.exact, keep_self=args.keep_self),
        )
    finally:
        components.close()
    if args.json:
        print(json.dumps(report.as_dict(per_query=args.per_query), ensure_ascii=False))
    else:
        print_report(report, Console(), per_query=args.per_query)
    return 0
