"""mmrag ask "question": retrieve items, answer from them, print the answer and cited items."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from mmrag.commands.search import FILTER_HELP, add_mode_flags, mode_values, parse_filter
from mmrag.console import printable
from retrieval.errors import ConfigError

if TYPE_CHECKING:
    from retrieval.answerers import Answer
    from retrieval.config import Settings

# Model, store, LLM and rich imports live in the functions that use them (`mmrag --help`).
# Copies of retrieval.answerers.BACKENDS and retrieval.rag.DEFAULT_K (tests/cli keeps them equal).
BACKENDS = ("extractive", "openai")
DEFAULT_K = 5


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Register the subcommand."""
    p = sub.add_parser(
        "ask", parents=[common], help="answer a question from the collection, citing items"
    )
    p.add_argument("question", help="what to ask")
    p.add_argument("--llm", choices=BACKENDS, help="answerer backend (MMRAG_LLM)")
    p.add_argument(
        "-k", "--k", type=int, default=DEFAULT_K, help=f"items to retrieve (default {DEFAULT_K})"
    )
    p.add_argument("--filter", help=FILTER_HELP)
    p.add_argument(
        "--modality", choices=("image", "text"), help="retrieve only images or only passages"
    )
    add_mode_flags(p)
    p.add_argument("--json", action="store_true", help="print the answer and citations as JSON")
    p.set_defaults(run=run)


def answer_dict(answer: Answer, query: str) -> dict[str, Any]:
    """JSON-ready answer."""
    return {
        "answer": answer.text,
        "citations": [c.to_dict() for c in answer.citations],
        "model": answer.model,
        "extractive": answer.extractive,
        "query": query,
    }


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Retrieve, answer (streaming to the terminal), then list the cited items."""
    from retrieval.answerers import ChatMessage, FinalEvent, create_answerer
    from retrieval.components import build_components
    from retrieval.filters import with_modality
    from retrieval.follow_model import check_query_model, query_embedder
    from retrieval.rag import ChatQuery, ChatService
    from retrieval.search import Searcher
    from retrieval.search_options import RankingFlags

    if not 1 <= args.k <= 100:
        raise ConfigError("-k must be in 1..100")
    if not args.question.strip():
        raise ConfigError("the question is empty")
    flags = RankingFlags.checked(**mode_values(args))  # before the model and store load
    if args.llm:
        settings = settings.model_copy(update={"llm": args.llm})
    components = build_components(settings, access="read")  # creates nothing
    answerer = create_answerer(settings)
    try:
        # a reindexed (moved) name is read with its new model; a plain one with the configured
        searcher = Searcher(query_embedder(components), components.store)
        check_query_model(searcher)
        expr = with_modality(parse_filter(args.filter, components.store), args.modality)
        service = ChatService(searcher, answerer, max_query_chars=settings.max_query_chars)
        query = ChatQuery(
            messages=(ChatMessage("user", args.question),), k=args.k, expr=expr,
            mode=flags.mode, fusion=flags.fusion(),
        )
        if args.json:
            answer = service.answer(query)
            print(json.dumps(answer_dict(answer, service.query_text(query)), ensure_ascii=False))
            return 0
        final: Answer | None = None
        for event in service.stream(query):
            if isinstance(event, FinalEvent):
                final = event.answer
            else:
                sys.stdout.write(printable(event.delta, keep_newlines=True))
                sys.stdout.flush()
        sys.stdout.write("\n")
    finally:
        answerer.close()
        components.close()
    assert final is not None
    print_citations(final)
    return 0


def print_citations(answer: Answer) -> None:
    """The cited items as a table that fits the terminal."""
    if not answer.citations:
        return
    from rich.console import Console

    from mmrag.hit_table import HitRow, hit_table

    console = Console()
    rows = [HitRow(f"[{c.n}]", c.score, c.id, c.source, c.caption) for c in answer.citations]
    console.print(hit_table(rows, console.width, title=f"cited items ({answer.model})"))
