"""mmrag demo's steps: images, ingest, text and image search, one answer, quality, next steps."""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ingest import IngestOptions, open_source, run_ingest
from ingest.progress import ProgressBar
from mmrag.console import cell, markup_safe
from mmrag.demo_data import DemoFolder, prepare_folder
from retrieval.answerers import ChatMessage, create_answerer
from retrieval.components import Components, build_components
from retrieval.config import Settings
from retrieval.demo.synthetic import HELD_OUT, caption_for
from retrieval.embedders.registry import DEMO_MODEL
from retrieval.evaluation import DEPTH, PRECISION_AT, evaluate, load_queries
from retrieval.imaging import decode_image
from retrieval.rag import ChatQuery, ChatService
from retrieval.search import Searcher, SearchRequest
from retrieval.types import Hit

COLLECTION = "demo"
SHOWN = 5
TEXT_QUERIES = (("red", "circle"), ("blue", "square"), ("green", "triangle"))
HELD_OUT_QUERY = ("yellow", "circle")
IMAGE_QUERY = ("purple", "star")
QUESTION = "Which pictures show an orange cross?"
QUESTION_COMBO = ("orange", "cross")


def demo_settings(settings: Settings, root: Path, checkpoint: str | None) -> Settings:
    """The user's settings with the demo's store, collection and model forced."""
    return settings.model_copy(
        update={
            "uri": str(root / "demo.db"),
            "token": None,
            "collection": COLLECTION,
            "index_type": "auto",
            "model": DEMO_MODEL,
            "pretrained": None,
            "checkpoint": Path(checkpoint).expanduser() if checkpoint else None,
            "llm": "extractive",
        }
    )


def run_demo(args: argparse.Namespace, settings: Settings) -> int:
    """Run the demo end to end and print what to try next."""
    started = time.perf_counter()
    out = Console(highlight=False, soft_wrap=True)
    root = Path(args.dir).expanduser()
    settings = demo_settings(settings, root, args.checkpoint)
    out.print(f"[bold]mmrag demo[/]: offline, with the bundled {DEMO_MODEL} model (a small CLIP "
              "trained on synthetic coloured shapes)\n")
    folder = prepare_folder(root, args.count)
    if folder.reused:
        out.print(f"[bold]1. Images[/]  reusing {folder.count} demo images in {markup_safe(root)}")
    else:
        out.print(f"[bold]1. Images[/]  generated {folder.count} demo images in "
                  f"{markup_safe(root / 'images')} (manifest: {markup_safe(folder.manifest)})")
    components = build_components(settings)
    try:
        if folder.regenerated:
            components.store.drop()
        ingest(components, folder, out)
        searcher = Searcher(components.embedder, components.store)
        searcher.check_model()
        text_searches(searcher, out)
        image_search(searcher, folder, out)
        answer(searcher, settings, out)
        quality(components, folder, out)
    finally:
        components.close()
    next_steps(settings, folder, args, out)
    out.print(f"\ndemo steps took {time.perf_counter() - started:.1f}s")
    return 0


def ingest(components: Components, folder: DemoFolder, out: Console) -> None:
    """Ingest the manifest with the real ingest job and say what it did."""
    out.print(f"[bold]2. Ingest[/]  {markup_safe(folder.manifest)} -> collection "
              f"{COLLECTION!r} in {markup_safe(folder.db)}")
    source = open_source(folder.manifest)
    with ProgressBar(Console(stderr=True), source) as bar:
        summary = run_ingest(components, source, IngestOptions(workers=2), progress=bar)
    if summary.ingested == 0 and summary.rejected == 0:
        out.print(f"   ingest added nothing: all {summary.duplicates} images were already stored "
                  "(rerunning is safe)")
    else:
        out.print(f"   ingested {summary.ingested}, already stored {summary.duplicates}, "
                  f"rejected {summary.rejected} in {summary.elapsed_s:.1f}s "
                  f"({summary.throughput:.0f} images/s)")


def matches(hit: Hit, combo: tuple[str, str]) -> bool:
    """Whether a hit shows the colour and shape asked for (from its metadata)."""
    return (hit.metadata.get("colour"), hit.metadata.get("shape")) == combo


def hits_table(title: str, hits: Sequence[Hit], combo: tuple[str, str]) -> Table:
    """The hits with a ✓ where the stored image shows the wanted colour and shape."""
    found = sum(matches(h, combo) for h in hits)
    table = Table(
        "#", "score", "caption", "file", "match",
        title=f"{title}: {found}/{len(hits)} match", title_justify="left",
    )
    for rank, hit in enumerate(hits, start=1):
        mark = "[green]✓[/]" if matches(hit, combo) else "[red]✗[/]"
        table.add_row(str(rank), f"{hit.score:.3f}", cell(hit.caption),
                      cell(Path(hit.source).name), mark)
    return table


def text_searches(searcher: Searcher, out: Console) -> None:
    """A few text queries, including one combination the model never saw in training."""
    out.print("[bold]3. Text search[/] (text -> image)")
    for combo in (*TEXT_QUERIES, HELD_OUT_QUERY):
        query = caption_for(*combo)
        hits = searcher.search_text(query, SearchRequest(k=SHOWN))
        title = f'"{query}"'
        if combo in HELD_OUT:
            title += " (held out: never seen in training, the model composes colour and shape)"
        out.print(hits_table(title, hits, combo))


def image_search(searcher: Searcher, folder: DemoFolder, out: Console) -> None:
    """One image query: a freshly drawn scene that is not in the collection."""
    path = folder.query_image(*IMAGE_QUERY)
    out.print(f"[bold]4. Image search[/] (image -> image) with {markup_safe(path)}, "
              f"{caption_for(*IMAGE_QUERY)} that is not in the collection")
    hits = searcher.search_image(decode_image(path.read_bytes()), SearchRequest(k=SHOWN))
    out.print(hits_table(f"similar to {path.name}", hits, IMAGE_QUERY))


def answer(searcher: Searcher, settings: Settings, out: Console) -> None:
    """One retrieval-augmented answer from the offline extractive answerer, with citations."""
    out.print(f'[bold]5. Ask[/] (extractive answerer, no LLM needed): "{QUESTION}"')
    answerer = create_answerer(settings, backend="extractive")
    try:
        service = ChatService(searcher, answerer)
        result = service.answer(ChatQuery(messages=(ChatMessage("user", QUESTION),), k=SHOWN))
    finally:
        answerer.close()
    for line in result.text.splitlines():
        out.print(f"   {markup_safe(line)}")
    shown = [(c.metadata.get("colour"), c.metadata.get("shape")) for c in result.citations]
    if result.citations:
        out.print(f"   {shown.count(QUESTION_COMBO)}/{len(shown)} cited items show "
                  f"{caption_for(*QUESTION_COMBO)}; citation [1] is item "
                  f"{markup_safe(result.citations[0].id)}")


def quality(components: Components, folder: DemoFolder, out: Console) -> None:
    """Score every demo query (mmrag eval on the demo queries file)."""
    report = evaluate(components.embedder, components.store, load_queries(folder.queries))
    out.print(f"[bold]6. Quality[/] on {markup_safe(folder.queries)} (as `mmrag eval` reports it)")
    for task in report.tasks:
        m = task.metrics
        out.print(
            f"   {task.task} ({task.queries} queries): P@{PRECISION_AT} "
            f"{m[f'precision@{PRECISION_AT}']:.2f}  R@{DEPTH} {m[f'recall@{DEPTH}']:.2f}  "
            f"MRR {m['mrr']:.2f}  nDCG@{DEPTH} {m[f'ndcg@{DEPTH}']:.2f}"
        )


def next_steps(settings: Settings, folder: DemoFolder, args: argparse.Namespace,
               out: Console) -> None:
    """How to serve, search and evaluate the demo collection, and how to go on with real data."""
    env = [f"MMRAG_URI={shlex.quote(settings.uri)}", f"MMRAG_COLLECTION={COLLECTION}",
           f"MMRAG_MODEL={DEMO_MODEL}"]
    if settings.checkpoint is not None:
        env.append(f"MMRAG_CHECKPOINT={shlex.quote(str(settings.checkpoint))}")
    if args.device:
        env.append(f"MMRAG_DEVICE={shlex.quote(args.device)}")
    prefix = " ".join(env)
    prog = sys.argv[0] if Path(sys.argv[0]).name == "mmrag" else "mmrag"
    out.print("\n[bold]Next[/]")
    out.print(f"   Start the API: {markup_safe(prefix)} {markup_safe(prog)} serve")
    out.print("   then open http://127.0.0.1:8000/ (web UI) or http://127.0.0.1:8000/docs (API)")
    out.print("   (Milvus Lite: stop the server before rerunning the demo)")
    out.print(f'   Search:        {markup_safe(prefix)} {markup_safe(prog)} search "a white star"')
    out.print(f"   Evaluate:      {markup_safe(prefix)} {markup_safe(prog)} eval "
              f"{markup_safe(shlex.quote(str(folder.queries)))} --exact")
    out.print(f"   Your images:   {markup_safe(prog)} ingest ~/Pictures  (./mmrag.db, ViT-B-32 "
              "downloaded on first use; see README \"Models\")")
