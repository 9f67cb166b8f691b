"""mmrag eval QUERIES: recall@1/5/10, P@5, MRR and nDCG@10 of a collection on labelled queries."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from retrieval.errors import ConfigError

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
        "left out of its ranking unless --keep-self. A query's optional \"group\" (e.g. "
        "visual, code, mixed) is reported apart; --modes vector,keyword,hybrid compares the "
        "ways text queries are ranked.",
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
    p.add_argument(
        "--modes", default="vector",
        help="how text queries are ranked, one or more of vector,keyword,hybrid (default "
        "vector; keyword and hybrid need the collection's text index)",
    )
    p.add_argument("--ranker", help="hybrid fusion: rrf (default) or weighted")
    p.add_argument(
        "--hybrid-weights", help="vector,keyword weights for --ranker weighted, e.g. 0.7,0.3"
    )
    p.add_argument("--rrf-k", type=int, default=60, help="RRF's k (default 60)")
    p.add_argument("--per-query", action="store_true", help="list every query's metrics")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Evaluate and print a table (or JSON)."""
    from rich.console import Console

    from mmrag.eval_report import print_comparison, print_report
    from retrieval.components import build_components
    from retrieval.evaluation import EvalOptions, evaluate_modes, load_queries
    from retrieval.follow_model import check_query_model, query_embedder
    from retrieval.search import MODES, Searcher
    from retrieval.search_options import RankingFlags, parse_weights

    modes = list(dict.fromkeys(m.strip() for m in args.modes.split(",") if m.strip()))
    unknown = [m for m in modes if m not in MODES]
    if not modes or unknown:
        raise ConfigError(
            f"--modes takes one or more of {', '.join(MODES)} separated by commas; "
            f"got {args.modes!r}"
        )
    flags = RankingFlags.checked(
        ranker=args.ranker, rrf_k=args.rrf_k,
        hybrid_weights=parse_weights(args.hybrid_weights) if args.hybrid_weights else None,
    )
    queries = load_queries(args.queries)
    components = build_components(settings, access="read")  # creates nothing
    try:
        # a reindexed (moved) name is read with its new model; a plain one with the configured
        embedder = query_embedder(components)
        check_query_model(Searcher(embedder, components.store))
        reports = evaluate_modes(
            embedder,
            components.store,
            queries,
            modes,
            EvalOptions(exact=args.exact, keep_self=args.keep_self, fusion=flags.fusion()),
        )
    finally:
        components.close()
    if args.json:
        payload = [r.as_dict(per_query=args.per_query) for r in reports]
        shown = payload[0] if len(payload) == 1 else {"modes": payload}
        print(json.dumps(shown, ensure_ascii=False))
    elif len(reports) == 1:
        print_report(reports[0], Console(), per_query=args.per_query)
    else:
        print_comparison(reports, Console())
    return 0
