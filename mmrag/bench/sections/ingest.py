"""Ingest section: JPEG files to flushed rows, against the bare model forward, the CPU ceiling
with decoding, and a naive decode-embed-insert-one-row pipeline; ingest's peak RSS."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mmrag.bench.measure import PeakRss, bare_forward
from mmrag.bench.models import BENCH_MODEL, load_embedder
from mmrag.bench.report import Row
from mmrag.bench.sizes import Sizes
from mmrag.bench.workload import write_jpegs


def ingest_section(
    model: str, embedder: Any, sizes: Sizes, work: Path, log: Callable[[str], None]
) -> list[Row]:
    """Ingest rows for ``model`` at its precision (and at fp32 too for ViT-B-32 in bf16)."""
    slow = model == BENCH_MODEL and embedder.precision == "fp32"  # ~35 img/s: 10k is 5 min
    n = sizes.images if slow else max(sizes.images, sizes.memory_images)
    folder, small = work / f"images-{n}", work / f"images-{sizes.images}"
    for path, count in ((folder, n), (small, sizes.images)):
        if not path.is_dir() or len(list(path.glob("*.jpg"))) < count:
            write_jpegs(path, count)  # deterministic: the small set is the big one's start
    label = f"{model} {embedder.precision}"
    rows, got = ingest_rows(label, embedder, folder, work / f"ingest-{model}.db", sizes)
    naive_paths = sorted(small.glob("*.jpg"))[: sizes.naive_images]
    naive = naive_ingest(embedder, naive_paths, work / f"naive-{model}.db")
    log(
        f"ingest {label}: {got['ips']:.1f} img/s (n={got['done']:.0f}), bare {got['bare']:.1f}, "
        f"ceiling {got['ceiling']:.1f}, naive {naive:.1f}, rss {got['rss']:.0f} MiB"
    )
    rows += [
        Row("ingest", f"{label} ingest vs naive per-row pipeline", got["ips"], "img/s", naive,
            f"naive decode-embed-insert 1 row ({len(naive_paths)} imgs), same precision", ">= 3"),
        Row("memory", f"{label} peak RSS, ingest of {got['done']:.0f} images (+ Milvus Lite)",
            got["rss"], "MiB"),
    ]
    if model == BENCH_MODEL and embedder.precision != "fp32":  # the pipeline at fp32 cost too
        fp32 = load_embedder(model, batch_size=sizes.batch_size, precision="fp32")
        more, got32 = ingest_rows(
            f"{model} fp32", fp32, small, work / f"ingest-{model}-fp32.db", sizes
        )
        log(f"ingest {model} fp32: {got32['ips']:.1f} img/s, bare {got32['bare']:.1f}")
        rows += more
    return rows


def ingest_rows(
    label: str, embedder: Any, folder: Path, db: Path, sizes: Sizes
) -> tuple[list[Row], dict[str, float]]:
    """Ingest vs the bare forward (before and after) and vs the CPU ceiling with decoding."""
    bs = sizes.batch_size
    cores = os.cpu_count() or 1
    before = bare_forward(embedder, bs, sizes.bare_batches)
    ips, rss, done = mmrag_ingest(embedder, folder, db, bs)
    after = bare_forward(embedder, bs, sizes.bare_batches)
    bare = (before + after) / 2
    decode_s = decode_cost_s(embedder, sorted(folder.glob("*.jpg"))[:64])
    ceiling = cores / (cores / bare + decode_s)  # model and decoding share the same cores
    note = (
        f"bare before/after {before:.1f}/{after:.1f}; decode+prepare "
        f"{decode_s * 1e3:.1f} ms/img on one core"
    )
    rows = [
        Row("ingest", f"{label} ingest {done} JPEGs -> flushed rows", ips, "img/s", bare,
            f"bare encode_image, batch {bs}", ">= 0.85", note),
        Row("ingest", f"{label} ingest vs CPU ceiling with decoding", ips, "img/s", ceiling,
            f"{cores} cores / (cores / bare + decode)", "",
            "what this CPU can do when the same cores also decode the JPEGs"),
    ]
    return rows, {"ips": ips, "rss": rss, "done": done, "bare": bare, "ceiling": ceiling}


def _components(embedder: Any, db: Path, collection: str) -> Any:
    from retrieval.components import Components
    from retrieval.config import Settings
    from retrieval.stores import open_store

    settings = Settings(uri=str(db), collection=collection)
    store = open_store(str(db), collection)
    return Components(settings=settings, store=store, _embedder=embedder)


def naive_ingest(embedder: Any, paths: list[Path], db: Path) -> float:
    """towhee/bootcamp shape: decode one image, embed one image, insert one row; flush at end."""
    import cv2

    from retrieval.types import Record

    comps = _components(embedder, db, "naive")
    store = comps.store
    store.ensure_collection(embedder.dim, embedder.model_id)
    started = time.perf_counter()
    for path in paths:
        bgr = cv2.imread(str(path))
        if bgr is None:
            raise RuntimeError(f"cannot decode {path}")
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        vec = embedder.embed_images([rgb])[0]
        store.upsert([Record(id=path.name, vector=vec, source=str(path))])
    store.flush()
    elapsed = time.perf_counter() - started
    comps.close()
    return len(paths) / elapsed


def mmrag_ingest(
    embedder: Any, folder: Path, db: Path, batch_size: int
) -> tuple[float, float, int]:
    """Images/s of run_ingest from JPEG files to flushed rows, and peak RSS (MiB, + Milvus Lite)."""
    from ingest import IngestOptions, open_source, run_ingest

    comps = _components(embedder, db, "ingest")
    options = IngestOptions(batch_size=batch_size, workers=max(1, min(4, os.cpu_count() or 1)))
    with PeakRss() as rss:
        summary = run_ingest(comps, open_source(folder), options)
    comps.close()
    return summary.ingested / summary.elapsed_s, rss.mib, summary.ingested


def decode_cost_s(embedder: Any, paths: list[Path]) -> float:
    """CPU seconds of one thread per image to read, decode and prepare, as ingest workers do."""
    from retrieval.imaging import decode_image

    started = time.thread_time()
    for path in paths:
        rgb = decode_image(path.read_bytes(), min_side=embedder.decode_min_side)
        embedder.prepare_image(rgb)
    return (time.thread_time() - started) / max(1, len(paths))
