"""mmrag eval's human-readable report: the per-task table and the weakest queries."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from mmrag.console import cell, markup_safe
from retrieval.evaluation import DEPTH, K_VALUES, PRECISION_AT, EvalReport

COMPARED = (
    ("R@1", "recall@1"), (f"R@{DEPTH}", f"recall@{DEPTH}"), (f"nDCG@{DEPTH}", f"ndcg@{DEPTH}")
)

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


def print_report(report: EvalReport, console: Console, per_query: bool = False) -> None:
    """The per-task table, then the weakest queries (or all with per_query)."""
    console.print(
        f"collection {markup_safe(repr(report.collection))}: {report.items} items, "
        f"index {markup_safe(report.index_type)}, model {markup_safe(report.model_id)}"
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
            f"collection: {markup_safe(shown)}{tail}"
        )
    if report.missing:
        shown = ", ".join(report.missing[:WORST_SHOWN])
        console.print(
            f"[yellow]{len(report.missing)} relevant id(s) are not in the collection[/] and were "
            f"ignored: {markup_safe(shown)}{' ...' if len(report.missing) > WORST_SHOWN else ''}"
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
            cell(label),
            str(len(result.relevant)),
            *(f"{result.metrics[key]:.2f}" for _, key in COLUMNS),
        )
    console.print(details)


def print_comparison(reports: list[EvalReport], console: Console) -> None:
    """One row per task and mode: R@1, R@10 and nDCG@10 of each mode side by side."""
    first = reports[0]
    console.print(
        f"collection {markup_safe(repr(first.collection))}: {first.items} items, "
        f"index {markup_safe(first.index_type)}, model {markup_safe(first.model_id)}"
    )
    table = Table("task", "n", "mode", *(title for title, _ in COMPARED),
                  caption="text queries ranked by each mode; image queries always by vector")
    tasks = list(dict.fromkeys(t.task for r in reports for t in r.tasks))
    for task in tasks:
        for index, report in enumerate(reports):
            found = next((t for t in report.tasks if t.task == task), None)
            if found is None:
                continue
            table.add_row(
                task if index == 0 else "", str(found.queries) if index == 0 else "",
                report.mode, *(f"{found.metrics[key]:.3f}" for _, key in COMPARED),
                end_section=index == len(reports) - 1,
            )
    console.print(table)
    if first.skipped:
        console.print(f"[yellow]skipped {len(first.skipped)} queries[/] with nothing relevant")
