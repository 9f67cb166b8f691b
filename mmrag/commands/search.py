"""mmrag search "text" | --image PATH: print ranked hits."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from retrieval.components import build_components
from retrieval.config import Settings
from retrieval.errors import ConfigError
from retrieval.follow_model import check_query_model, query_embedder
from retrieval.imaging import decode_image
from retrieval.search import Searcher, SearchRequest
from retrieval.types import Hit


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Register the subcommand."""
    p = sub.add_parser("search", parents=[common], help="text-to-image or image-to-image search")
    p.add_argument("query", nargs="?", help="text query")
    p.add_argument("--image", type=Path, help="query image file instead of text")
    p.add_argument("-k", type=int, default=10, help="number of hits (default 10)")
    p.add_argument("--offset", type=int, default=0, help="skip this many hits (paging)")
    p.add_argument("--json", action="store_true", help="print hits as JSON")
    p.set_defaults(run=run)


def hit_dict(hit: Hit) -> dict:
    """JSON-ready hit."""
    return {
        "id": hit.id,
        "score": round(hit.score, 6),
        "source": hit.source,
        "caption": hit.caption,
        "metadata": dict(hit.metadata),
    }


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Embed the query with the collection's model and print hits."""
    if (args.query is None) == (args.image is None):
        raise ConfigError("give either a text query or --image PATH, not both or neither")
    if not 1 <= args.k <= 16384 or args.offset < 0:
        raise ConfigError("-k must be in 1..16384 and --offset >= 0")
    components = build_components(settings)
    try:
        # a reindexed (moved) name is read with its new model; a plain one with the configured
        searcher = Searcher(query_embedder(components), components.store)
        check_query_model(searcher)
        request = SearchRequest(k=args.k, offset=args.offset)
        if args.image is not None:
            try:
                data = args.image.read_bytes()
            except OSError as exc:
                raise ConfigError(f"cannot read {str(args.image)!r}: {exc.strerror}") from exc
            hits = searcher.search_image(decode_image(data), request)
        else:
            hits = searcher.search_text(args.query, request)
    finally:
        components.close()
    if args.json:
        print(json.dumps([hit_dict(h) for h in hits], ensure_ascii=False))
        return 0
    table = Table("#", "score", "id", "source", "caption")
    for rank, hit in enumerate(hits, start=args.offset + 1):
        table.add_row(str(rank), f"{hit.score:.4f}", hit.id, hit.source, hit.caption)
    Console().print(table)
    return 0
