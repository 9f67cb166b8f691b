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
        "--sections", default=None,
        help="comma-separated subset of startup,text,ingest,search,store,peers "
        "(default: all but peers)",
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
    p.add_argument(
        "--peers", action="store_true",
        help="ingest the same 2,000 JPEGs with the same ViT-B-32 weights through mmrag, "
        "towhee's runtime, clip-retrieval (installed into a venv of its own once) and a naive "
        "per-row loop; alone unless --sections is given too",
    )
    p.add_argument(
        "--peer-tools", default="mmrag,towhee,clip-retrieval,naive",
        help="comma-separated subset of mmrag,towhee,clip-retrieval,naive for --peers",
    )
    p.add_argument("--json", dest="json_out", help="write the report as JSON here")
    p.add_argument("--markdown", help="write the table as Markdown here")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run the benchmark and print the table."""
    import logging

    from mmrag.bench import QUICK, TINY, Sizes, render_markdown, render_rich, run_bench
    from mmrag.bench.sections.peers import TOOLS as PEER_TOOLS

    logging.getLogger().setLevel(logging.WARNING)  # open_clip logs every model load at INFO
    overrides = TINY if args.tiny else QUICK if args.quick else {}
    sizes = Sizes(**overrides)
    if args.models:
        sizes.models = [m.strip() for m in args.models.split(",") if m.strip()]
    sizes.torch_threads = args.torch_threads
    sizes.precision = args.precision
    sections = chosen_sections(args.sections, args.peers)
    tools = tuple(t.strip() for t in args.peer_tools.split(",") if t.strip())
    unknown = sorted(set(tools) - set(PEER_TOOLS))
    if unknown:
        print(f"mmrag bench: unknown peer tool {', '.join(unknown)}; choose from "
              f"{', '.join(PEER_TOOLS)}.", file=sys.stderr)
        return 2
    report = run_bench(sizes, sections, log=lambda m: print(m, file=sys.stderr, flush=True),
                       store_python=args.store_python, peer_tools=tools)
    render_rich(report)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report.as_dict(), indent=2, default=str) + "\n")
    if args.markdown:
        Path(args.markdown).write_text(render_markdown(report))
    return 0


def chosen_sections(given: str | None, peers: bool) -> tuple[str, ...]:
    """--sections as a tuple; --peers alone runs only the peers section, with it adds it."""
    if given is None:
        return ("peers",) if peers else ("startup", "text", "ingest", "search", "store")
    sections = tuple(s.strip() for s in given.split(",") if s.strip())
    return (*sections, "peers") if peers and "peers" not in sections else sections
