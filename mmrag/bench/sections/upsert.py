"""Upsert batch figures: MilvusStore.upsert rows/s into Milvus Lite against bytes per call."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mmrag.bench.measure import cpu_seconds, size_label
from mmrag.bench.report import Row
from mmrag.bench.sizes import Sizes

UPSERT_BATCH_KIB = (512, 1024, 2048, 4096)  # bytes per upsert call tried (mmrag: BATCH_BYTES)
COLLECTION = "bench"
MODEL_ID = "bench-model"


def upsert_batch_section(
    sizes: Sizes, dim: int, log: Callable[[str], None]
) -> tuple[list[Row], list[dict[str, Any]]]:
    """MilvusStore.upsert rows/s into Milvus Lite against bytes per call (BATCH_BYTES), on an
    empty file and, in full mode, on one already holding 100k rows: Lite runs each upsert as
    a SQLite delete that scans the whole table, so the best call size grows with the file."""
    from retrieval.stores import milvus_rows

    chosen = milvus_rows.upsert_batch_bytes(True)
    trial = min(4096, max(sizes.store_sizes))
    levels = [0] + ([100_000] if max(sizes.store_sizes) >= 100_000 else [])
    results = _measure(levels, trial, dim)
    rows = []
    for res in results:
        rows.append(_upsert_row(res, results, chosen, dim))
        log(f"upsert into {_held(res)}: {_kib(res['kib'])} a call ({res['rows_per_call']} rows): "
            f"{res['rows_s']:,.0f} rows/s")
    return rows, results


def _measure(levels: list[int], trial: int, dim: int) -> list[dict[str, Any]]:
    """For each file level (rows already stored) and each call size: one timed upsert."""
    from retrieval.stores import milvus_rows
    from retrieval.stores.milvus import MilvusStore

    saved = milvus_rows.BATCH_BYTES
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(
        prefix="mmrag-bench-upsert-", ignore_cleanup_errors=True
    ) as work:
        try:
            for level in levels:
                store = MilvusStore(str(Path(work) / f"upsert{level}.db"), COLLECTION,
                                    index_type="FLAT")
                try:
                    store.ensure_collection(dim, MODEL_ID)
                    _prefill(store, level, dim)
                    lite = _lite_processes()
                    for kib in UPSERT_BATCH_KIB:
                        milvus_rows.BATCH_BYTES = kib * 1024
                        results.append(_timed_upsert(store, level, kib, trial, dim, lite))
                finally:
                    store.close()
        finally:
            milvus_rows.BATCH_BYTES = saved
    return results


def _prefill(store: Any, level: int, dim: int) -> None:
    """``level`` rows by plain inserts, which fill fast (no delete scan per call)."""
    from retrieval.stores import milvus_rows

    client = store._client
    assert client is not None
    for start in range(0, level, 4096):
        recs = _bench_records(min(4096, level - start), dim, seed=1000 + start)
        for chunk in milvus_rows.chunks_by_size(_rows(recs, dim), dim, 1 << 20):
            client.insert(COLLECTION, chunk)


def _timed_upsert(
    store: Any, level: int, kib: int, trial: int, dim: int, lite: list[Any]
) -> dict[str, Any]:
    """Wall and CPU (client + Lite) rows/s of one store.upsert of ``trial`` rows."""
    from retrieval.stores import milvus_rows

    recs = _bench_records(trial, dim, seed=kib)
    per_call = len(next(milvus_rows.chunks_by_size(_rows(recs, dim), dim)))
    cpu0 = cpu_seconds(lite)
    t0 = time.perf_counter()
    store.upsert(recs)
    wall = time.perf_counter() - t0
    cpu = cpu_seconds(lite) - cpu0
    return {"stored": level, "kib": kib, "rows_per_call": per_call, "rows": trial,
            "rows_s": trial / wall, "cpu_rows_s": trial / cpu if cpu > 0 else None}


def _upsert_row(
    res: dict[str, Any], results: list[dict[str, Any]], chosen: int, dim: int
) -> Row:
    """One call size's row, against the chosen BATCH_BYTES on a file of the same level."""
    base = next(x for x in results if x["stored"] == res["stored"] and x["kib"] * 1024 == chosen)
    mine = res["kib"] * 1024 == chosen
    cpu_note = (f"; CPU (client + Lite) {res['cpu_rows_s']:,.0f} rows/s"
                if res["cpu_rows_s"] else "")
    return Row(
        "store",
        f"MilvusStore.upsert {dim}-d rows, Lite file {_held(res)}, {_kib(res['kib'])} a call",
        res["rows_s"], "rows/s",
        None if mine else base["rows_s"],
        "" if mine else f"{_kib(chosen // 1024)} a call (BATCH_BYTES)",
        "",
        f"~{res['rows_per_call']} rows a call, {res['rows']} rows{cpu_note}"
        + ("; BATCH_BYTES (chosen)" if mine else "")
        + ("" if res["stored"] else "; empty file: Lite's per-call table scan is free"),
    )


def _lite_processes() -> list[Any]:
    """This process's Milvus Lite server children (their CPU counts as the store's)."""
    import psutil

    return [p for p in psutil.Process().children(recursive=True) if "milvus" in p.name()]


def _bench_records(n: int, dim: int, seed: int) -> list[Any]:
    """Rows shaped like ingest's: content-hash id, file path, caption, a few metadata keys."""
    from mmrag.bench.store import unit_vectors
    from retrieval.ids import content_id
    from retrieval.types import Modality, Record

    vectors = unit_vectors(n, dim, seed)
    words = ["dog", "cat", "red car", "beach at sunset"]
    return [
        Record(
            id=content_id(f"{seed}-{i}".encode()),
            vector=vectors[i],
            source=f"/data/photos/2024/album-{i // 500:04d}/IMG_{i:06d}.jpg",
            caption=f"a photo of a {words[i % 4]} number {i} in the park",
            modality=Modality.IMAGE,
            metadata={"label": words[i % 4], "width": 640, "height": 480, "year": 2024},
            model_id=MODEL_ID,
        )
        for i in range(n)
    ]


def _rows(records: list[Any], dim: int) -> list[dict[str, Any]]:
    """The Milvus rows MilvusStore would write for ``records``."""
    from retrieval.stores import milvus_rows

    return [milvus_rows.to_row(r, dim=dim, model_id=MODEL_ID, collection=COLLECTION)
            for r in records]


def _held(res: dict[str, Any]) -> str:
    return size_label(res["stored"]) if res["stored"] else "empty"


def _kib(kib: int) -> str:
    return f"{kib // 1024} MiB" if kib % 1024 == 0 else f"{kib} KiB"
