"""mmrag bench [--quick] [--json out.json] [--markdown out.md]: figures beside their baselines."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from retrieval.config import Settings


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Register the subcommand."""
    p = sub.add_parser(
        "bench",
        parents=[common],
        help="measure ingest, search, store and memory figures against their baselines",
        description="CLI start-up vs a bare interpreter, ingest throughput vs the bare model "
        "forward and a naive per-row pipeline, HTTP search latency vs text encode + one store "
        "search, Milvus Lite insert/search/recall per index, and peak RSS; ViT-B-32 (random "
        "weights: same cost as trained) and the demo model. Uses temporary files only.",
    )
    p.add_argument("--quick", action="store_true", help="small sizes (< 2 min), same table")
    p.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # smoke test sizes
    p.add_argument(
        "--sections", default="startup,text,ingest,search,store",
        help="comma-separated subset of startup,text,ingest,search,store",
    )
    p.add_argument("--models", help="comma-separated models (default ViT-B-32,mmrag-demo)")
    p.add_argument(
        "--torch-threads", type=int, default=0,
        help="torch intra-op threads here and in the server (default: one per core)",
    )
    p.add_argument(
        "--precision", choices=("auto", "fp32", "bf16"), default="auto",
        help="model precision here and in the server (auto: bf16 on CPUs with AMX/AVX512-BF16)",
    )
    p.add_argument("--store-python", help="another venv's python for a Milvus Lite comparison")
    p.add_argument("--json", dest="json_out", help="write the report as JSON here")
    p.add_argument("--markdown", help="write the table as Markdown here")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run the benchmark and print the table."""
    import logging

    from mmrag.bench import QUICK, TINY, Sizes, render_markdown, render_rich, run_bench

    logging.getLogger().setLevel(logging.WARNING)  # open_clip logs every model load at INFO
    overrides = TINY if args.tiny else QUICK if args.quick else {}
    sizes = Sizes(**overrides)
    if args.models:
        sizes.models = [m.strip() for m in args.models.split(",") if m.strip()]
    sizes.torch_threads = args.torch_threads
    sizes.precision = args.precision
    sections = tuple(s.strip() for s in args.sections.split(",") if s.strip())
    report = run_bench(sizes, sections, log=lambda m: print(m, file=sys.stderr, flush=True),
                       store_python=args.store_python)
    render_rich(report)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report.as_dict(), indent=2, default=str) + "\n")
    if args.markdown:
        Path(args.markdown).write_text(render_markdown(report))
    return 0
