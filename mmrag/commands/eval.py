"""mmrag eval QUERIES: recall@1/5/10, P@5, MRR and nDCG@10 of a collection on labelled queries."""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from retrieval.components import build_components
from retrieval.config import Settings
from retrieval.evaluation import (
    DEPTH,
    K_VALUES,
    PRECISION_AT,
    EvalOptions,
    EvalReport,
    evaluate,
    load_queries,
)
from retrieval.follow_model import check_query_model, query_embedder
from retrieval.search import Searcher

COLUMNS = (
    *((f"R@{k}", f"recall@{k}") for k in K_VALUES),
    (f"P@{PRECISION_AT}", f"precision@{PRECISION_AT}"),
    ("MRR", "mrr"),
    (f"nDCG@{DEPTH}", f"ndcg@{DEPTH}"),
)
WORST_SHOWN = 10
CAPTION = (
    f"R@k: share of a query's relevant items in its top k; P@{PRECISION_AT}: share of the top "
    f"{PRECISION_AT} that is relevant; MRR, nDCG@{DEPTH} (binary gains) over the top {DEPTH}; "
    f"ANN@{DEPTH}: share of the exact top {DEPTH} the index returned"
)


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
    queries = load_queries(args.queries)
    components = build_components(settings)
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


def print_report(report: EvalReport, console: Console, per_query: bool = False) -> None:
    """The per-task table, then the weakest queries (or all with per_query)."""
    console.print(
        f"collection {escape(repr(report.collection))}: {report.items} items, "
        f"index {report.index_type}, model {escape(report.model_id)}"
    )
    table = Table("task", "n", *(title for title, _ in COLUMNS), caption=CAPTION)
    if report.exact:
        table.add_column("ANN@10")
    for task in report.tasks:
        row = [task.task, str(task.queries), *(f"{task.metrics[key]:.3f}" for _, key in COLUMNS)]
        if task.exact_metrics is not None:
            row.append(f"{task.ann_recall or 0.0:.3f}")
        table.add_row(*row)
        if task.exact_metrics is not None:
            exact = task.exact_metrics
            table.add_row(
                "  exact", "", *(f"{exact[key]:.3f}" for _, key in COLUMNS), "", style="dim"
            )
    console.print(table)
    if report.skipped:
        shown = ", ".join(report.skipped[:WORST_SHOWN])
        more = len(report.skipped) - WORST_SHOWN
        tail = f" and {more} more" if more > 0 else ""
        noun = "query" if len(report.skipped) == 1 else "queries"
        console.print(
            f"[yellow]skipped {len(report.skipped)} {noun}[/] with nothing relevant in the "
            f"collection: {escape(shown)}{tail}"
        )
    if report.missing:
        shown = ", ".join(report.missing[:WORST_SHOWN])
        console.print(
            f"[yellow]{len(report.missing)} relevant id(s) are not in the collection[/] and were "
            f"ignored: {escape(shown)}{' ...' if len(report.missing) > WORST_SHOWN else ''}"
        )
    results = sorted(report.results, key=lambda r: (r.metrics[f"ndcg@{DEPTH}"], r.query.qid))
    if not per_query:
        results = [r for r in results if r.metrics[f"ndcg@{DEPTH}"] < 1.0][:WORST_SHOWN]
    if not results:
        return
    title = "every query" if per_query else f"weakest queries (up to {WORST_SHOWN}, by nDCG)"
    details = Table("query", "rel", *(t for t, _ in COLUMNS), title=title)
    details.columns[0].overflow = "ellipsis"
    details.columns[0].no_wrap = True
    for result in results:
        query = result.query
        label = query.text if query.image is None else f"[image] {query.image.name}"
        details.add_row(
            escape(str(label)),
            str(len(result.relevant)),
            *(f"{result.metrics[key]:.2f}" for _, key in COLUMNS),
        )
    console.print(details)
