"""Store section: mmrag/bench/store.py's Milvus Lite figures (insert, search, recall@10 per size,
data set and index type) run in a child process, turned into table rows."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mmrag.bench import store as store_figures
from mmrag.bench.measure import size_label
from mmrag.bench.report import Row
from mmrag.bench.sections.upsert import upsert_batch_section
from mmrag.bench.sizes import Sizes

STORE_SMALL_MAX = 100_000  # AUTOINDEX runs up to this size (it is IVF_FLAT on Lite 2.5.1)


def store_section(
    sizes: Sizes,
    dim: int,
    log: Callable[[str], None],
    python: str | None = None,
    metrics: tuple[str, ...] = ("IP",),
) -> tuple[list[Row], dict]:
    """Store figures from mmrag/bench/store.py in a child process (any interpreter): insert,
    search and recall@10 per size, data set (uniform, clustered) and index type; then, with the
    project's interpreter, MilvusStore.upsert rows/s against bytes per call."""
    started = time.perf_counter()
    config = _config(sizes, dim, python, metrics)
    out = subprocess.run(
        [python or sys.executable, str(Path(store_figures.__file__)), json.dumps(config)],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        reason = (out.stderr.strip().splitlines() or ["no output"])[-1][:200]
        log(f"store section with {python or sys.executable} failed: {reason}")
        return [
            Row(
                "store",
                f"store figures with {python or sys.executable}",
                None,
                "",
                note=f"failed: {reason}",
            )
        ], {"error": out.stderr[-4000:]}
    data = json.loads(out.stdout.strip().splitlines()[-1])
    tag = f"Lite {data['milvus_lite']}"
    rows = [_index_types_row(tag, data.get("index_types", {}))]
    about = {(d["size"], d["dataset"]): d for d in data.get("datasets", [])}
    for r in data["results"]:
        rows += _store_rows(tag, dim, r, about.get((r["size"], r["dataset"]), {}), log)
    log(f"store figures ({tag}): {data.get('elapsed_s', 0):.0f} s")
    if python is None:
        batch_rows, data["upsert_batches"] = upsert_batch_section(sizes, dim, log)
        rows += batch_rows
    data["section_s"] = time.perf_counter() - started
    log(f"store section: {data['section_s']:.0f} s")
    return rows, data


def _config(
    sizes: Sizes, dim: int, python: str | None, metrics: tuple[str, ...]
) -> dict[str, Any]:
    """What mmrag/bench/store.py is asked to run."""
    from retrieval.stores.milvus_rows import IVF_NLIST, IVF_NPROBE

    return {
        "sizes": sizes.store_sizes,
        "dim": dim,
        "queries": sizes.store_queries,
        "exact_queries": min(20, sizes.store_queries),
        # The first index type of a data set is inserted (timed); the others replace the index
        # on the same rows. AUTOINDEX is IVF_FLAT's twin on Lite 2.5.1: not run at 1M.
        "datasets": {
            "uniform": ["FLAT", "IVF_FLAT", ["AUTOINDEX", STORE_SMALL_MAX]],
            "clustered": ["IVF_FLAT", ["AUTOINDEX", STORE_SMALL_MAX]],
        },
        "metrics": list(metrics),
        "params": {
            "nlist": IVF_NLIST,
            "nprobe": IVF_NPROBE,
            "nprobes": sorted({8, IVF_NPROBE, 64}),
            "insert_batch": 256,
            # Lite 3.2.2 cannot reload (docs/benchmarks.md); the clustered set skips it (time)
            "reload": ["uniform"] if python is None else False,
        },
    }


def _index_types_row(tag: str, types: dict[str, str]) -> Row:
    """Which index types the store accepted (and the refusal it gave for the others)."""
    accepted = [name for name, said in types.items() if said == "ok"]
    refused = {name: said for name, said in types.items() if said != "ok"}
    note = f"accepted {', '.join(accepted) or 'none'}"
    if refused:
        first = next(iter(refused.values()))
        note += f"; refused {', '.join(refused)} ({first[:120]})"
    return Row("store", f"{tag} index types", None, "", note=note)


def _store_rows(
    tag: str, dim: int, r: dict[str, Any], about: dict[str, Any], log: Callable[[str], None]
) -> list[Row]:
    """Search (and recall, for ANN indexes) and insert rows of one store.py result."""
    label = f"{tag} {r['index']}/{r['metric']} {size_label(r['size'])}x{dim} {r['dataset']}"
    if "error" in r or "search_ms_p50" not in r:
        log(f"store {label}: failed: {r.get('error', 'no result')}")
        return [Row("store", label, None, "", note=f"failed: {r.get('error', 'no result')}")]
    notes = [f"recall@10 {r['recall_at_10']:.3f}", f"mean {r['search_ms_mean']:.1f} ms"]
    sweep = r.get("sweep", [])
    if len(sweep) > 1:
        notes.append(
            "nprobe " + "/".join(str(s["nprobe"]) for s in sweep)
            + ": recall " + "/".join(f"{s['recall_at_10']:.3f}" for s in sweep)
            + ", p50 " + "/".join(f"{s['search_ms_p50']:.1f}" for s in sweep) + " ms"
        )
    if "switch_s" in r:
        notes.append(f"index replaced in {r['switch_s']:.1f} s")
    rows = [
        Row("store", f"{label} search, 1 query", r["search_ms_p50"], "ms",
            r["exact_numpy_ms"], "exact numpy (brute force)", "", "; ".join(notes))
    ]
    if r["index"] != "FLAT":
        facts = []
        if len(sweep) > 1 and len({round(s["recall_at_10"], 9) for s in sweep}) == 1:
            facts.append("same recall at every nprobe")
        if "same_cluster_top10" in about:
            facts.append(f"true top-10 in the query's cluster {about['same_cluster_top10']:.0%}")
        if "nn1_cos" in about:
            facts.append(f"true 1st/10th neighbour cosine {about['nn1_cos']:.2f}/"
                         f"{about['nn10_cos']:.2f}")
        rows.append(Row("store", f"{label} recall@10 vs exact", r["recall_at_10"], "", 1.0,
                        "exact", ">= 0.95", "; ".join(facts)))
    if "insert_rows_s" in r:
        note = f"{r.get('insert_batch', 256)} rows (int64 id + vector) a call, flushed"
        if "load_s" in r:
            note += f"; release + load {r['load_s']:.1f} s"
        rows.append(Row("store", f"{label} insert", r["insert_rows_s"], "rows/s", note=note))
    log(f"store {label}: {r['search_ms_p50']:.1f} ms, recall {r['recall_at_10']:.3f}"
        + (f", {r['insert_rows_s']:.0f} rows/s" if "insert_rows_s" in r else ""))
    return rows
