"""Milvus Lite store figures: insert rows/s, search ms and recall@10 per index type and size.

Standalone on purpose (numpy + pymilvus only): run it with another venv's python to compare
Milvus Lite releases, ``python mmrag/bench/store.py '{"sizes": [10000], ...}'``; it prints one
JSON line. ``mmrag bench`` runs it in a child process with the project's interpreter.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from typing import Any

import numpy as np


def unit_vectors(n: int, dim: int, seed: int) -> np.ndarray:
    """n random float32 unit vectors, generated in chunks (1M x 512 fits in 2 GiB)."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 100_000):
        chunk = rng.standard_normal((min(100_000, n - start), dim), dtype=np.float32)
        chunk /= np.linalg.norm(chunk, axis=1, keepdims=True)
        out[start : start + len(chunk)] = chunk
    return out


def exact_top_k(base: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, float]:
    """Exact top-k ids by inner product and the numpy cost per query (ms, one query a call)."""
    ids = np.empty((len(queries), k), dtype=np.int64)
    started = time.perf_counter()
    for i, query in enumerate(queries):
        scores = base @ query
        top = np.argpartition(-scores, k)[:k]
        ids[i] = top[np.argsort(-scores[top])]
    return ids, (time.perf_counter() - started) * 1000.0 / len(queries)


def bench_one(
    size: int, dim: int, index_type: str, metric: str, queries: int, params: dict[str, Any],
    base: np.ndarray, qvec: np.ndarray, truth: np.ndarray, k: int = 10,
) -> dict[str, Any]:
    """Insert ``size`` rows into a fresh Lite file, index, then time single-query searches."""
    from pymilvus import DataType, MilvusClient

    folder = tempfile.mkdtemp(prefix="mmrag-bench-store-")
    client = MilvusClient(os.path.join(folder, "bench.db"))
    try:
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
        index = MilvusClient.prepare_index_params()
        build = {"nlist": params["nlist"]} if index_type == "IVF_FLAT" else {}
        index.add_index(field_name="vector", index_type=index_type, metric_type=metric,
                        params=build)
        client.create_collection("bench", schema=schema, index_params=index)
        started = time.perf_counter()
        batch = int(params.get("insert_batch", 256))  # Lite 2.5.1: ~4x faster than 1000 a call
        for start in range(0, size, batch):
            rows = [{"id": start + i, "vector": v} for i, v in enumerate(base[start:start + batch])]
            client.insert("bench", rows)
        client.flush("bench")
        insert_s = time.perf_counter() - started
        load_s = 0.0
        if params.get("reload", True):  # Lite 3.2.2 fails here: "file seems not fully written"
            client.release_collection("bench")
            started = time.perf_counter()
            client.load_collection("bench")
            load_s = time.perf_counter() - started
        search = {"nprobe": params["nprobe"]} if index_type == "IVF_FLAT" else {}
        client.search("bench", [qvec[0].tolist()], limit=k,
                      search_params={"metric_type": metric, "params": search})  # warm-up
        times, found = [], []
        for query in qvec[:queries]:
            t0 = time.perf_counter()
            res = client.search("bench", [query.tolist()], limit=k,
                                search_params={"metric_type": metric, "params": search})
            times.append(time.perf_counter() - t0)
            found.append([int(hit["id"]) for hit in res[0]])
        recall = float(np.mean([
            len(set(got) & set(want.tolist())) / k for got, want in zip(found, truth, strict=False)
        ]))
        ms = np.array(times) * 1000.0
        return {
            "size": size, "index": index_type, "metric": metric,
            "insert_rows_s": size / insert_s, "load_s": load_s,
            "search_ms_p50": float(np.percentile(ms, 50)),
            "search_ms_mean": float(ms.mean()),
            "recall_at_10": recall,
        }
    finally:
        client.close()
        shutil.rmtree(folder, ignore_errors=True)


def run(config: dict[str, Any]) -> dict[str, Any]:
    """Every (size, index, metric) of the config, with the numpy exact baseline per size."""
    import pymilvus

    try:
        from importlib.metadata import version

        lite = version("milvus-lite")
    except Exception:  # noqa: BLE001
        lite = "unknown"
    dim, n_queries = int(config.get("dim", 512)), int(config.get("queries", 50))
    results: list[dict[str, Any]] = []
    exact: dict[int, float] = {}
    for size in config.get("sizes", [10_000]):
        base = unit_vectors(size, dim, seed=1)
        qvec = unit_vectors(n_queries, dim, seed=2)
        truth, exact_ms = exact_top_k(base, qvec, 10)
        exact[size] = exact_ms
        for index_type in config.get("indexes", ["FLAT", "IVF_FLAT"]):
            for metric in config.get("metrics", ["IP"]):
                row = bench_one(size, dim, index_type, metric, n_queries, config["params"],
                                base, qvec, truth)
                row["exact_numpy_ms"] = exact_ms
                results.append(row)
        del base
    return {"milvus_lite": lite, "pymilvus": pymilvus.__version__, "dim": dim,
            "queries": n_queries, "results": results}


if __name__ == "__main__":
    print(json.dumps(run(json.loads(sys.argv[1]))))
