"""The naive per-row loop as a peer: decode one JPEG, embed one image, insert one row; flush.

Run as ``python -m mmrag.bench.peers.naive_child --folder ... --model ... --checkpoint ...
--db ...``; prints one result line (``base.result_line``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mmrag.bench.peers.base import Peer, child_env, parse_result_line, result_line
from mmrag.bench.peers.child_args import child_command, child_parser, jpeg_files

MODULE = "mmrag.bench.peers.naive_child"


def naive_peer(
    folder: Path, model: str, checkpoint: Path, db: Path, settings_env: dict[str, str]
) -> Peer:
    """This module as a child process over the folder."""
    return Peer("naive per-row loop", child_command(MODULE, folder, model, checkpoint, db),
                child_env(settings_env), parse_result_line,
                "rows flushed to Milvus Lite (model loaded before the clock starts)")


def main(argv: Sequence[str] | None = None) -> int:
    from mmrag.bench.sections.ingest import naive_ingest
    from retrieval.config import Settings
    from retrieval.embedders import create_embedder
    from retrieval.stores import open_store

    args = child_parser("decode one, embed one, insert one row").parse_args(argv)
    settings = Settings()  # MMRAG_PRECISION and MMRAG_TORCH_THREADS, as mmrag ingest reads them
    embedder = create_embedder(args.model, checkpoint=args.checkpoint, device="cpu",
                               torch_threads=settings.torch_threads, precision=settings.precision)
    paths = jpeg_files(args.folder)
    images_per_s = naive_ingest(embedder, paths, args.db)
    store = open_store(str(args.db), "naive")  # the rows really there, as the others count
    rows = store.count()
    store.close()
    print(result_line(rows, len(paths) / images_per_s,
                      precision=getattr(embedder, "precision", "?")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
