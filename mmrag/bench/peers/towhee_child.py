"""towhee 1.1.3's own runtime as a peer: the bootcamp's insert pipeline with mmrag's operators.

``pipe.input(paths).flat_map(...).map(decode).map(clip).map(normalise).map(insert).output()``
on towhee's runtime and its executor (every node its own thread, one row at a time through
each operator), mmrag's operators registered in towhee's registry under towhee's names (as
``tests/integration/test_towhee_interop.py`` does), inserting into a collection made with
pymilvus in Milvus Lite, as the bootcamp notebook makes it. Run as ``python -m
mmrag.bench.peers.towhee_child --folder ... --model ... --checkpoint ... --db ...``.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from mmrag.bench.peers.base import Peer, child_env, parse_result_line, result_line
from mmrag.bench.peers.child_args import child_command, child_parser, jpeg_files

MODULE = "mmrag.bench.peers.towhee_child"
COLLECTION = "peers"
OPERATORS = ("image-decode/cv2", "image-text-embedding/clip", "towhee/np-normalize",
             "ann-insert/milvus-client")


def towhee_peer(
    folder: Path, model: str, checkpoint: Path, db: Path, settings_env: dict[str, str]
) -> Peer:
    """This module as a child process over the folder."""
    return Peer("towhee 1.1.3 runtime", child_command(MODULE, folder, model, checkpoint, db),
                child_env(settings_env), parse_result_line,
                "rows flushed to Milvus Lite (model loaded before the clock starts)")


def import_towhee() -> Any:
    """towhee, without its pkg_resources deprecation warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        import towhee
    return towhee


def register_mmrag_operators(towhee: Any) -> None:
    """mmrag's operators in towhee's own registry, under towhee's names."""
    from pipelines import resolve

    for name in OPERATORS:
        towhee.register(name=name)(resolve(name))


def make_bootcamp_collection(db: Path, dim: int) -> Any:
    """The notebook's collection, made with pymilvus: int64 id, the vector, IVF_FLAT on L2."""
    from pymilvus import DataType, MilvusClient

    from retrieval.stores.lite_server import start_lite_server

    start_lite_server(db)  # the bench's harness, not the notebook's: a scratch HOME of its own
    client = MilvusClient(uri=str(db))
    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=dim)
    index = client.prepare_index_params()
    index.add_index("embedding", index_type="IVF_FLAT", metric_type="L2", params={"nlist": 512})
    client.create_collection(COLLECTION, schema=schema, index_params=index)
    return client


def insert_pipeline(towhee: Any, model: str, checkpoint: Path, db: Path) -> Any:
    """decode -> clip image embedding -> normalise -> insert, one row at a time."""
    ops = towhee.ops

    def rows(paths: list[str]) -> Iterator[tuple[int, str]]:
        yield from enumerate(paths)

    return (
        towhee.pipe.input("paths")
        .flat_map("paths", ("id", "path"), rows)
        .map("path", "img", ops.image_decode.cv2("rgb"))
        .map("img", "vec", ops.image_text_embedding.clip(
            model_name=model, modality="image", checkpoint_path=str(checkpoint), device="cpu"))
        .map("vec", "vec", ops.towhee.np_normalize())
        .map(("id", "vec"), (), ops.ann_insert.milvus_client(uri=str(db),
                                                             collection_name=COLLECTION))
        .output()
    )


def main(argv: Sequence[str] | None = None) -> int:
    from pipelines.operators.clip import Clip
    from retrieval.config import Settings

    args = child_parser("the bootcamp insert pipeline on towhee's runtime").parse_args(argv)
    threads = Settings().torch_threads  # towhee's clip operator takes no thread count
    if threads:
        import torch

        torch.set_num_threads(threads)
    towhee = import_towhee()
    register_mmrag_operators(towhee)
    # the model is loaded here, before the clock starts: towhee's clip node gets the same one
    clip = Clip(
        model_name=args.model, modality="image", checkpoint_path=str(args.checkpoint),
        device="cpu")
    client = make_bootcamp_collection(args.db, clip.embedder.dim)
    paths = [str(p) for p in jpeg_files(args.folder)]
    pipeline = insert_pipeline(towhee, args.model, args.checkpoint, args.db)
    started = time.perf_counter()
    pipeline(paths).get()  # runs to the end: the pipeline has no output columns
    client.flush(COLLECTION)
    run_s = time.perf_counter() - started
    rows = int(client.get_collection_stats(COLLECTION)["row_count"])
    client.close()
    print(result_line(rows, run_s, precision=getattr(clip.embedder, "precision", "?")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
