"""mmrag search "text" | --image PATH: print ranked hits (modes, filters, paging, score floor,
MMR)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmrag.console import printable
from retrieval.errors import ConfigError
from retrieval.limits import MAX_TOPK

if TYPE_CHECKING:
    import numpy as np

    from retrieval.config import Settings
    from retrieval.stores.base import VectorStore
    from retrieval.types import Hit

# Model, store and rich imports live in the functions that use them: `mmrag --help` stays instant.
FILTER_HELP = 'structured filter as JSON, as in the API: \'{"label": "dog"}\''


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Register the subcommand."""
    p = sub.add_parser("search", parents=[common], help="text-to-image or image-to-image search")
    p.add_argument(
        "query", nargs="?",
        help='text query, or a composed one: \'"beach" + 2*"sunset" - "people"\', @ID (a stored '
        "item), img:PATH (an image file)",
    )
    p.add_argument("--image", type=Path, help="query image file instead of text")
    p.add_argument("-k", type=int, default=10, help="number of hits (default 10)")
    p.add_argument("--offset", type=int, default=0, help="skip this many hits (paging)")
    p.add_argument("--filter", help=FILTER_HELP)
    p.add_argument(
        "--modality", choices=("image", "text"),
        help="only images (and video frames) or only text passages (default: both)",
    )
    p.add_argument(
        "--min-score", type=float, help="drop hits scoring below this (cosine, -1..1)"
    )
    p.add_argument(
        "--diversity", type=float, default=0.0,
        help="maximal marginal relevance weight: 0 = plain ranking (default), 1 = only spread",
    )
    add_mode_flags(p)
    output = p.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print hits as JSON (exact strings)")
    output.add_argument(
        "--paths", action="store_true",
        help="print only the hits' sources (file paths or URLs), one a line, for scripts",
    )
    p.set_defaults(run=run)


def add_mode_flags(p: argparse.ArgumentParser) -> None:
    """--mode, --ranker, --hybrid-weights and --rrf-k (shared with mmrag ask and eval)."""
    p.add_argument(
        "--mode", help="vector, keyword (BM25 over captions, file names, text columns) or "
        "hybrid (both, fused); default: hybrid where the collection has the text index, else "
        "vector. Image queries are searched by vector.",
    )
    p.add_argument("--ranker", help="hybrid fusion: rrf (default) or weighted")
    p.add_argument(
        "--hybrid-weights", help="vector,keyword weights for --ranker weighted, e.g. 0.7,0.3"
    )
    p.add_argument("--rrf-k", type=int, default=60, help="RRF's k (default 60)")


def mode_values(args: argparse.Namespace) -> dict[str, Any]:
    """The mode flags as RankingFlags values (the weights parsed)."""
    from retrieval.search_options import parse_weights

    weights = parse_weights(args.hybrid_weights) if args.hybrid_weights else None
    return {"mode": args.mode, "ranker": args.ranker, "hybrid_weights": weights,
            "rrf_k": args.rrf_k}


def parse_filter(text: str | None, store: VectorStore) -> str | None:
    """The safe expression of a ``--filter`` JSON object (ConfigError with the API's message)."""
    if not text:
        return None
    from retrieval.errors import FilterError
    from retrieval.fields import filter_expression

    try:
        spec = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--filter is not JSON: {exc.msg}") from exc
    try:
        return filter_expression(spec, store)
    except FilterError as exc:
        raise ConfigError(f"--filter: {exc}") from exc


def hit_dict(hit: Hit) -> dict[str, Any]:
    """JSON-ready hit."""
    return {
        "id": hit.id,
        "score": round(hit.score, 6),
        "source": hit.source,
        "caption": hit.caption,
        "modality": getattr(hit.modality, "value", str(hit.modality)),
        "metadata": dict(hit.metadata),
    }


def read_query_image(path: str) -> np.ndarray:
    """An image file of a composed query (img:PATH) as RGB, or a ConfigError saying why not."""
    from retrieval.errors import ImageDecodeError
    from retrieval.imaging import decode_image

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read img:{path}: {exc.strerror}; check the path") from exc
    try:
        return decode_image(data)
    except ImageDecodeError as exc:
        raise ConfigError(f"img:{path} is not an image this tool can read: {exc}") from exc


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Embed the query with the collection's model and print hits."""
    from retrieval.components import build_components
    from retrieval.compose import (
        check_terms,
        compose_vector,
        is_composed,
        parse_composition,
        single_text,
    )
    from retrieval.filters import with_modality
    from retrieval.follow_model import check_query_model, query_embedder
    from retrieval.imaging import decode_image
    from retrieval.search import Searcher, SearchRequest, check_page
    from retrieval.search_options import RankingFlags

    if (args.query is None) == (args.image is None):
        raise ConfigError("give either a text query or --image PATH, not both or neither")
    if not 1 <= args.k <= MAX_TOPK:
        raise ConfigError(f"-k must be in 1..{MAX_TOPK}")
    flags = RankingFlags.checked(
        offset=args.offset, min_score=args.min_score, diversity=args.diversity,
        **mode_values(args),
    )
    check_page(args.k, flags.offset)
    terms = None  # a composed query is read and checked before the store opens
    if args.query is not None and is_composed(args.query):
        terms = parse_composition(args.query)
        check_terms(terms)
    components = build_components(settings, access="read")  # creates nothing
    try:
        # a reindexed (moved) name is read with its new model; a plain one with the configured
        searcher = Searcher(query_embedder(components), components.store)
        check_query_model(searcher)
        request = SearchRequest(
            k=args.k,
            offset=flags.offset,
            expr=with_modality(parse_filter(args.filter, components.store), args.modality),
            min_score=flags.min_score,
            diversity=flags.diversity,
            mode=flags.mode,
            fusion=flags.fusion(),
        )
        if args.image is not None:
            try:
                data = args.image.read_bytes()
            except OSError as exc:
                raise ConfigError(f"cannot read {str(args.image)!r}: {exc.strerror}") from exc
            hits = searcher.search_image(decode_image(data), request)
        elif terms is not None and single_text(terms) is not None:  # '"R-4821"': plain text
            hits = searcher.search_text(single_text(terms) or "", request)
        elif terms is not None:  # '"beach" + "sunset" - "people"', @ID, img:PATH
            if request.mode not in (None, "vector"):
                raise ConfigError(
                    f"a composed query is searched by vector only; drop --mode {request.mode}"
                )
            vector = compose_vector(terms, searcher.embedder, searcher.store, read_query_image)
            hits = searcher.search_vector(vector, request)
        else:
            hits = searcher.search_text(args.query, request)
    finally:
        components.close()
    if args.json:
        print(json.dumps([hit_dict(h) for h in hits], ensure_ascii=False))
    elif args.paths:
        for hit in hits:
            print(printable(hit.source))
    else:
        print_hits(hits, first_rank=flags.offset + 1)
    return 0


def print_hits(hits: list[Hit], first_rank: int) -> None:
    """The hits as a table that fits the terminal (or a line saying there are none)."""
    from rich.console import Console

    from mmrag.hit_table import HitRow, hit_table

    console = Console()
    if not hits:
        console.print("no hits (try another query, a lower --min-score or no --filter)")
        return
    rows = [
        HitRow(str(rank), hit.score, hit.id, hit.source, hit.caption)
        for rank, hit in enumerate(hits, start=first_rank)
    ]
    console.print(hit_table(rows, console.width))
