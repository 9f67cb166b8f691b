"""mmrag demo: generate demo images, ingest, search, answer and evaluate, offline, in seconds.

Everything lives in ``--dir`` (default ``./mmrag-demo-data``): the images, their manifest, the
Milvus Lite file ``demo.db`` (collection ``demo``) and a queries file for ``mmrag eval``, so the
demo never touches a user's own ``./mmrag.db``. It always uses the bundled ``mmrag-demo`` model,
whatever ``MMRAG_MODEL`` says. Rerunning reuses the images and ingests nothing new.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from retrieval.config import Settings

# The steps (and their model, store and rich imports) live in mmrag.demo_steps: `mmrag --help`
# stays instant.
DEFAULT_DIR = "./mmrag-demo-data"
DEFAULT_COUNT = 300


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Register the subcommand (it takes no store or model flags: the demo brings its own)."""
    p = sub.add_parser(
        "demo",
        help="offline end-to-end demo: images -> ingest -> search -> answer, in seconds",
        description="Generate synthetic coloured-shape images into --dir, ingest them with the "
        "bundled mmrag-demo model into Milvus Lite (DIR/demo.db, collection 'demo'), run text "
        "and image searches, answer one question with the extractive answerer and score the "
        "demo queries. Safe to rerun: existing images are reused and nothing is ingested twice. "
        "Your own ./mmrag.db and MMRAG_MODEL are not used.",
    )
    p.add_argument("--dir", default=DEFAULT_DIR, help=f"demo folder (default {DEFAULT_DIR})")
    p.add_argument(
        "--count", type=int, default=DEFAULT_COUNT,
        help=f"images to generate (default {DEFAULT_COUNT})",
    )
    p.add_argument("--checkpoint", help="other mmrag-demo weights (default: the bundled ones)")
    p.add_argument("--device", help="auto, cpu, cuda, cuda:N (MMRAG_DEVICE)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run the demo end to end and print what to try next."""
    from mmrag.demo_steps import run_demo

    return run_demo(args, settings)
