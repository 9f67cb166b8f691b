"""Milvus Lite store figures: insert rows/s, search ms and ANN recall@10 per index type, size and
data set, against exact (numpy) search.

Standalone on purpose (numpy + pymilvus only): run it with another venv's python to compare
Milvus Lite releases, ``python mmrag/bench/store.py '{"sizes": [10000], ...}'``; it prints one
JSON line. ``mmrag bench`` runs it in a child process with the project's interpreter.

Data sets (``dataset``):

``uniform``
    Unit vectors uniformly distributed on the sphere. No structure at all: the worst case for
    IVF-type indexes (a query's neighbours are spread over every cell, recall ~ cells probed /
    cells), and not what CLIP embeddings look like.
``clustered``
    A mixture of Gaussians on the sphere, shaped like embedding data (``Mixture``): 64 topic
    directions; 2048 cluster centres, each ``normalize(topic + 1.0 * g)`` (cosine ~0.7 to its
    topic, ~0.5 between clusters of one topic); each point ``normalize(centre + s * g)`` with a
    per-cluster spread ``s`` drawn from 0.5..1.0 (cosine to its centre 0.9..0.7); cluster
    popularity log-normal (sigma 1, so some clusters are ~10x larger than others).
    ``g`` is a standard normal vector scaled by ``1/sqrt(dim)`` (norm ~1). Queries are fresh
    draws from the same mixture, never database rows. The result carries how often the true
    top-10 of a query lies in its own cluster and the true 1st/10th neighbour cosines, so the
    structure can be compared with real embeddings.

Milvus Lite 2.5.1 accepts only FLAT, IVF_FLAT and AUTOINDEX (``probe_index_types``). It keeps a
collection in one growing segment and, from 100,000 rows on, serves IVF_FLAT and AUTOINDEX from
segcore's interim index with its own fixed parameters (the requested nlist and nprobe change
nothing); below 100,000 rows every index type searches exhaustively. The nprobe sweep is kept
because other Lite releases and servers do honour it.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

WORLD_SEED = 7  # the clustered mixture (topics, centres, spreads, popularity)
CHUNK = 100_000  # rows generated at a time (1M x 512 float32 is 2 GiB in all)
PROBED_INDEXES = ("FLAT", "IVF_FLAT", "IVF_SQ8", "IVF_PQ", "HNSW", "DISKANN", "SCANN", "AUTOINDEX")


# ----- data sets ---------------------------------------------------------------------------


def _normalize(rows: np.ndarray) -> np.ndarray:
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows


def unit_vectors(n: int, dim: int, seed: int) -> np.ndarray:
    """n random float32 unit vectors, uniform on the sphere, generated in chunks."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, CHUNK):
        chunk = rng.standard_normal((min(CHUNK, n - start), dim), dtype=np.float32)
        out[start : start + len(chunk)] = _normalize(chunk)
    return out


@dataclass(frozen=True)
class Mixture:
    """A mixture of Gaussians on the unit sphere (see the module docstring)."""

    centres: np.ndarray  # (clusters, dim) unit vectors
    spread: np.ndarray  # (clusters,) noise norm relative to the unit centre
    weights: np.ndarray  # (clusters,) probability of each cluster


def mixture(
    dim: int,
    *,
    clusters: int = 2048,
    topics: int = 64,
    topic_spread: float = 1.0,
    spread: tuple[float, float] = (0.5, 1.0),
    popularity_sigma: float = 1.0,
    seed: int = WORLD_SEED,
) -> Mixture:
    """Cluster centres grouped around topic directions, per-cluster spread and popularity."""
    rng = np.random.default_rng(seed)
    scale = 1.0 / math.sqrt(dim)
    topic = _normalize(rng.standard_normal((topics, dim), dtype=np.float32))
    owner = rng.integers(0, topics, size=clusters)
    noise = rng.standard_normal((clusters, dim), dtype=np.float32) * np.float32(
        topic_spread * scale
    )
    centres = _normalize(topic[owner] + noise)
    spreads = rng.uniform(spread[0], spread[1], size=clusters).astype(np.float32)
    weights = rng.lognormal(0.0, popularity_sigma, size=clusters)
    return Mixture(centres=centres, spread=spreads, weights=weights / weights.sum())


def clustered_vectors(n: int, mix: Mixture, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n float32 unit vectors drawn from the mixture, and the cluster of each, in chunks."""
    rng = np.random.default_rng(seed)
    dim = mix.centres.shape[1]
    scale = np.float32(1.0 / math.sqrt(dim))
    out = np.empty((n, dim), dtype=np.float32)
    labels = rng.choice(len(mix.weights), size=n, p=mix.weights)
    for start in range(0, n, CHUNK):
        which = labels[start : start + CHUNK]
        chunk = rng.standard_normal((len(which), dim), dtype=np.float32)
        chunk *= (mix.spread[which] * scale)[:, None]
        chunk += mix.centres[which]
        out[start : start + len(chunk)] = _normalize(chunk)
    return out, labels


def dataset(
    kind: str, n: int, n_queries: int, dim: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(database, queries, database clusters, query clusters); clusters None when uniform."""
    if kind == "uniform":
        return unit_vectors(n, dim, seed=1), unit_vectors(n_queries, dim, seed=2), None, None
    if kind == "clustered":
        mix = mixture(dim)
        base, base_labels = clustered_vectors(n, mix, seed=3)
        queries, query_labels = clustered_vectors(n_queries, mix, seed=4)
        return base, queries, base_labels, query_labels
    raise ValueError(f"unknown data set {kind!r} (uniform or clustered)")


# ----- exact search and recall ------------------------------------------------------------


def exact_top_k(
    base: np.ndarray, queries: np.ndarray, k: int, chunk_rows: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k row numbers and scores by inner product, best first.

    Memory-bounded: one batched matmul per chunk of rows (about 128 MiB of scores at most),
    keeping a running top-k per query, so 1M x 512 costs one pass over the data.
    """
    q = np.ascontiguousarray(queries, dtype=np.float32)
    k = min(k, len(base))
    rows = chunk_rows or max(1024, min(131_072, (32 << 20) // max(1, len(q))))
    best_s = np.empty((len(q), 0), dtype=np.float32)
    best_i = np.empty((len(q), 0), dtype=np.int64)
    for start in range(0, len(base), rows):
        scores = q @ base[start : start + rows].T
        kk = min(k, scores.shape[1])
        part = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
        cand_s = np.concatenate([best_s, np.take_along_axis(scores, part, axis=1)], axis=1)
        cand_i = np.concatenate([best_i, part + start], axis=1)
        if cand_s.shape[1] > k:
            keep = np.argpartition(-cand_s, k - 1, axis=1)[:, :k]
            cand_s = np.take_along_axis(cand_s, keep, axis=1)
            cand_i = np.take_along_axis(cand_i, keep, axis=1)
        best_s, best_i = cand_s, cand_i
    order = np.argsort(-best_s, axis=1, kind="stable")
    return np.take_along_axis(best_i, order, axis=1), np.take_along_axis(best_s, order, axis=1)


def exact_search_ms(base: np.ndarray, queries: np.ndarray, k: int = 10) -> float:
    """numpy brute force, one query a call (what a search without an index costs): ms/query."""
    started = time.perf_counter()
    for query in queries:
        scores = base @ query
        top = np.argpartition(-scores, k)[:k]
        _ = top[np.argsort(-scores[top])]
    return (time.perf_counter() - started) * 1000.0 / max(1, len(queries))


def recall_at_k(found: Sequence[Sequence[int]], truth: np.ndarray) -> float:
    """Mean share of each query's true top-k that the search returned (k = truth's width)."""
    k = truth.shape[1]
    if not len(truth):
        return float("nan")
    hits = [
        len(set(map(int, got)) & set(want.tolist())) / k
        for got, want in zip(found, truth, strict=True)
    ]
    return float(np.mean(hits))


def same_cluster_share(
    truth: np.ndarray, base_labels: np.ndarray, query_labels: np.ndarray
) -> float:
    """Share of the true top-k neighbours that lie in the query's own cluster."""
    return float(np.mean(base_labels[truth] == query_labels[:, None]))


# ----- Milvus Lite ------------------------------------------------------------------------


def _lite_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("milvus-lite")
    except PackageNotFoundError:
        return "unknown"


def _index(index_type: str, metric: str, nlist: int) -> Any:
    from pymilvus import MilvusClient

    params = MilvusClient.prepare_index_params()
    build = {"nlist": nlist} if index_type.startswith("IVF") else {}
    if index_type == "IVF_PQ":
        build["m"] = 8
    if index_type == "HNSW":
        build = {"M": 16, "efConstruction": 200}
    params.add_index(field_name="vector", index_type=index_type, metric_type=metric, params=build)
    return params


def _schema(dim: int) -> Any:
    from pymilvus import DataType, MilvusClient

    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
    return schema


def probe_index_types(client: Any, names: Sequence[str] = PROBED_INDEXES) -> dict[str, str]:
    """Try to create a collection with each index type: "ok", or the server's refusal."""
    out = {}
    for i, name in enumerate(names):
        collection = f"probe_{i}"
        try:
            client.create_collection(collection, schema=_schema(8),
                                     index_params=_index(name, "IP", 16))
            out[name] = "ok"
        except Exception as exc:  # noqa: BLE001 (the message is the finding)
            out[name] = str(getattr(exc, "message", "") or exc).strip()[:200]
        finally:
            if client.has_collection(collection):
                client.drop_collection(collection)
    return out


def _search_params(index_type: str, metric: str, nprobe: int | None) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if index_type.startswith("IVF") and nprobe:
        params["nprobe"] = nprobe
    return {"metric_type": metric, "params": params}


def _time_searches(
    client: Any, name: str, queries: np.ndarray, truth: np.ndarray, params: dict[str, Any]
) -> dict[str, float]:
    """One query a call (after one warm-up): p50/mean ms and recall@k against truth."""
    k = truth.shape[1]
    client.search(name, [queries[0].tolist()], limit=k, search_params=params)
    times, found = [], []
    for query in queries:
        started = time.perf_counter()
        res = client.search(name, [query.tolist()], limit=k, search_params=params)
        times.append(time.perf_counter() - started)
        found.append([int(hit["id"]) for hit in res[0]])
    ms = np.array(times) * 1000.0
    return {
        "search_ms_p50": float(np.percentile(ms, 50)),
        "search_ms_mean": float(ms.mean()),
        "recall_at_10": recall_at_k(found, truth),
    }


def _insert(client: Any, name: str, base: np.ndarray, batch: int) -> float:
    """Insert every row (id = row number), flush; seconds."""
    started = time.perf_counter()
    for start in range(0, len(base), batch):
        rows = [{"id": start + i, "vector": v} for i, v in enumerate(base[start : start + batch])]
        client.insert(name, rows)
    client.flush(name)
    return time.perf_counter() - started


def _reload(client: Any, name: str) -> float:
    """Release and load again (what opening the file after a restart costs); seconds."""
    client.release_collection(name)
    started = time.perf_counter()
    client.load_collection(name)
    return time.perf_counter() - started


def _switch_index(client: Any, name: str, index_type: str, metric: str, nlist: int) -> float:
    """Replace the vector index on the same rows (Lite rebuilds and reloads); seconds."""
    started = time.perf_counter()
    client.release_collection(name)
    for old in client.list_indexes(name):
        client.drop_index(name, old)
    client.create_index(name, _index(index_type, metric, nlist))
    client.load_collection(name)
    return time.perf_counter() - started


def _plan(entries: Sequence[Any], size: int) -> list[str]:
    """Index types to run at this size: an entry is a name or [name, largest size]."""
    out = []
    for entry in entries:
        name, limit = (entry, None) if isinstance(entry, str) else (entry[0], entry[1])
        if limit is None or size <= int(limit):
            out.append(str(name))
    return out


def bench_dataset(
    client: Any, size: int, kind: str, metric: str, indexes: list[str], data: dict[str, Any],
    config: dict[str, Any],
) -> list[dict[str, Any]]:
    """Insert once with the first index type (timed), then switch to each other one."""
    params = config.get("params", {})
    nlist, nprobe = int(params.get("nlist", 128)), int(params.get("nprobe", 16))
    sweep = [int(p) for p in params.get("nprobes", [nprobe])]
    batch = int(params.get("insert_batch", 256))
    name = f"bench_{kind}_{metric.lower()}_{size}"
    rows: list[dict[str, Any]] = []
    for position, index_type in enumerate(indexes):
        row: dict[str, Any] = {"size": size, "dataset": kind, "index": index_type,
                               "metric": metric, "exact_numpy_ms": data["exact_ms"]}
        try:
            if position == 0:
                client.create_collection(name, schema=_schema(data["dim"]),
                                         index_params=_index(index_type, metric, nlist))
                row["insert_s"] = _insert(client, name, data["base"], batch)
                row["insert_rows_s"] = size / row["insert_s"]
                row["insert_batch"] = batch
                reload = params.get("reload", True)  # Lite 3.2.2 fails it ("not fully written")
                if reload is True or (isinstance(reload, list) and kind in reload):
                    row["load_s"] = _reload(client, name)
            else:
                row["switch_s"] = _switch_index(client, name, index_type, metric, nlist)
            probes = sweep if index_type.startswith("IVF") else [None]
            for p in probes:
                got = _time_searches(client, name, data["queries"], data["truth"],
                                     _search_params(index_type, metric, p))
                if p is not None:
                    row.setdefault("sweep", []).append({"nprobe": p, **got})
                if p in (None, nprobe) or "search_ms_p50" not in row:
                    row.update(got, nprobe=p)
        except Exception as exc:  # noqa: BLE001 (one index failing must not hide the others)
            row["error"] = str(getattr(exc, "message", "") or exc).strip()[:300]
            if position == 0:
                rows.append(row)
                break
        rows.append(row)
    if client.has_collection(name):
        client.drop_collection(name)
    return rows


def run(config: dict[str, Any]) -> dict[str, Any]:
    """Every (size, data set, metric, index type) of the config, with exact numpy baselines."""
    import pymilvus
    from pymilvus import MilvusClient

    from retrieval.stores.lite_server import start_lite_server

    started = time.perf_counter()
    dim, n_queries = int(config.get("dim", 512)), int(config.get("queries", 50))
    k = int(config.get("k", 10))
    plans = config.get("datasets", {"uniform": ["FLAT", "IVF_FLAT"]})
    metrics = config.get("metrics", ["IP"])
    results: list[dict[str, Any]] = []
    data_info: list[dict[str, Any]] = []
    folder = tempfile.mkdtemp(prefix="mmrag-bench-store-")
    db = Path(folder) / "bench.db"
    start_lite_server(db)  # a scratch HOME of its own, beside a running mmrag
    client = MilvusClient(str(db))
    try:
        supported = probe_index_types(client, config.get("probe", PROBED_INDEXES))
        for size in config.get("sizes", [10_000]):
            for kind, entries in plans.items():
                indexes = _plan(entries, size)
                if not indexes:
                    continue
                t0 = time.perf_counter()
                base, queries, base_labels, query_labels = dataset(kind, size, n_queries, dim)
                gen_s = time.perf_counter() - t0
                t0 = time.perf_counter()
                truth, scores = exact_top_k(base, queries, k)
                truth_s = time.perf_counter() - t0
                exact_ms = exact_search_ms(base, queries[: int(config.get("exact_queries", 20))], k)
                info = {"size": size, "dataset": kind, "generate_s": gen_s, "truth_s": truth_s,
                        "exact_numpy_ms": exact_ms,
                        "nn1_cos": float(scores[:, 0].mean()),
                        "nn10_cos": float(scores[:, -1].mean())}
                if base_labels is not None and query_labels is not None:
                    info["same_cluster_top10"] = same_cluster_share(truth, base_labels,
                                                                    query_labels)
                data_info.append(info)
                data = {"dim": dim, "base": base, "queries": queries, "truth": truth,
                        "exact_ms": exact_ms}
                for metric in metrics:
                    results += bench_dataset(client, size, kind, metric, indexes, data, config)
                del base, data
    finally:
        client.close()
        shutil.rmtree(folder, ignore_errors=True)
    return {"milvus_lite": _lite_version(), "pymilvus": pymilvus.__version__, "dim": dim,
            "queries": n_queries, "k": k, "index_types": supported, "datasets": data_info,
            "results": results, "elapsed_s": time.perf_counter() - started}


if __name__ == "__main__":
    print(json.dumps(run(json.loads(sys.argv[1]))))
