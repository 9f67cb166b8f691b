"""Search section: HTTP /search latency and N-client QPS against text encode + one store search
in process, on Milvus Lite and on the embedded Milvus server with HNSW (the store in processes
of its own) with that index's recall; then N clients over clustered vectors with IVF_FLAT on
Lite, and that index's recall."""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmrag.bench.http_load import Served, serve_and_load
from mmrag.bench.measure import percentiles, seconds, size_label
from mmrag.bench.models import checkpoint_for
from mmrag.bench.report import Row
from mmrag.bench.sizes import Sizes
from mmrag.bench.workload import unique_queries, warm_texts
from retrieval.stores.milvus_rows import HNSW_EF

WIDE_EF = 512  # a wider HNSW search beside mmrag's ef, to show what recall costs


def search_section(
    model: str,
    embedder: Any,
    text_batch_per_s: float,
    sizes: Sizes,
    work: Path,
    log: Callable[[str], None],
) -> list[Row]:
    """HTTP search latency (1 and N clients) against text encode + one store search in process;
    then N clients over clustered vectors with an IVF_FLAT index (``sizes.ann_vectors``).
    ``text_batch_per_s`` (trimmed text encode at the text batch size) is the QPS ceiling."""
    from mmrag.bench.store import unit_vectors
    from retrieval.stores import open_store

    db = work / f"search-{model}-{sizes.vectors}.db"
    fill_search_db(db, model, embedder, unit_vectors(sizes.vectors, embedder.dim, seed=5))
    store = open_store(str(db), "bench")
    for text in warm_texts(seed=3):
        store.search(embedder.embed_texts([text]), k=10)
    bare = [
        seconds(functools.partial(_encode_and_search, store, embedder, [query]))
        for query in unique_queries(sizes.queries, seed=21)
    ]
    bare_ms = np.array(bare) * 1e3
    batched_qps = batched_ceiling(store, embedder, sizes)
    lite_found = top10_rows(store, held_out(embedder.dim, sizes))
    store.close()
    run = serve_and_load(model, db, sizes)
    log(
        f"search {model}: bare p50 {np.median(bare_ms):.1f} ms, http1 {percentiles(run.one_ms)} "
        f"(server took_ms p50 {np.median(run.took_ms):.1f}), "
        f"{sizes.clients} clients {run.qps:.1f} qps {percentiles(run.many_ms)}"
    )
    n = size_label(sizes.vectors)
    rows = [
        Row(
            "search",
            f"{model} HTTP /search p50, 1 client, {n} vectors",
            float(np.median(run.one_ms)),
            "ms",
            float(np.median(bare_ms)),
            "text encode + store.search in process",
            "<= 1.3",
            f"p50/p95/p99 {percentiles(run.one_ms)} ms; server took_ms p50 "
            f"{np.median(run.took_ms):.0f}; bare {percentiles(bare_ms)} ms",
        ),
        _qps_row(model, sizes, run, f"{n} vectors", text_batch_per_s,
                 "FLAT (exact), the Lite default"),
        _batched_row(model, sizes, run, "vs batched encode + search", batched_qps,
                     "the system's own ceiling: the store search is part of every query"),
        Row(
            "memory",
            f"{model} server peak RSS under load (+ Milvus Lite, {n} vectors)",
            run.rss_mib,
            "MiB",
        ),
    ]
    if sizes.server_search:
        rows += server_search_rows(model, embedder, text_batch_per_s, sizes, work, log,
                                   LiteFigures(run, lite_found))
    if sizes.ann_vectors:
        rows += ann_search_rows(model, embedder, text_batch_per_s, sizes, work, log)
    return rows


@dataclass(frozen=True)
class LiteFigures:
    """What the Lite run measured, shown beside the server's rows."""

    run: Served
    found: list[list[int]]  # Lite's top-10 row numbers for ``held_out`` queries


def held_out(dim: int, sizes: Sizes) -> np.ndarray:
    """Query vectors drawn like the search rows' vectors (uniform), never database rows."""
    from mmrag.bench.store import unit_vectors

    return unit_vectors(sizes.store_queries, dim, seed=6)


def server_search_rows(
    model: str, embedder: Any, ceiling: float, sizes: Sizes, work: Path,
    log: Callable[[str], None], lite: LiteFigures | None = None,
    server: Callable[[Path], AbstractContextManager[str]] | None = None,
) -> list[Row]:
    """The 1- and N-client rows again with the store in the embedded Milvus server (HNSW, the
    server default), and HNSW's recall@10 against exact search on the uniform vectors and on
    clustered ones (at mmrag's ef and a wider one), beside Lite's figures; skipped
    with the reason when the server cannot run here. ``server(work)`` yields the server's URI
    (default: start the embedded standalone and stop it after)."""
    from mmrag.bench.embedded_milvus import ServerUnavailable, embedded_milvus
    from mmrag.bench.store import exact_top_k, recall_at_k, unit_vectors
    from retrieval.stores import open_store

    vectors = unit_vectors(sizes.vectors, embedder.dim, seed=5)  # the Lite rows' vectors
    queries = held_out(embedder.dim, sizes)
    truth, _ = exact_top_k(vectors, queries, 10)
    try:
        with (server or embedded_milvus)(work) as uri:
            fill_search_db(uri, model, embedder, vectors, index_type="HNSW")
            del vectors
            store = open_store(uri, "bench")
            indexed = store.wait_until_indexed(timeout=600.0)
            index = store.info().index_type
            found = top10_rows(store, queries)
            wide = search_ids(uri, queries, WIDE_EF)
            for text in warm_texts(seed=3):
                store.search(embedder.embed_texts([text]), k=10)
            bare_ms = np.array([
                seconds(functools.partial(_encode_and_search, store, embedder, [query]))
                for query in unique_queries(sizes.queries, seed=21)
            ]) * 1e3
            batched_qps = batched_ceiling(store, embedder, sizes)
            store.close()
            run = serve_and_load(model, uri, sizes)
            clustered = clustered_recalls(uri, model, embedder, sizes)
    except ServerUnavailable as exc:
        log(f"search {model} on the embedded Milvus server: skipped: {exc}")
        return [Row("search", "embedded Milvus server search rows: skipped", None, "",
                    note=str(exc).splitlines()[0])]
    recall, wide_recall = recall_at_k(found, truth), recall_at_k(wide, truth)
    lite_p50 = f"{np.median(lite.run.one_ms):.0f} ms" if lite else "-"
    lite_qps = f"{lite.run.qps:.0f} q/s" if lite else "-"
    lite_recall = f"{recall_at_k(lite.found, truth):.3f}" if lite else "-"
    log(f"search {model} server {index}: http1 {percentiles(run.one_ms)}, {sizes.clients} "
        f"clients {run.qps:.1f} qps, recall@10 {recall:.3f} (Lite {lite_recall})")
    n = size_label(sizes.vectors)
    where = f"{n} vectors, Milvus server {index}"
    waited = "" if indexed else "; the index wait timed out (some rows searched unindexed)"
    return [
        Row("search", f"{model} HTTP /search p50, 1 client, {where}",
            float(np.median(run.one_ms)), "ms", float(np.median(bare_ms)),
            "text encode + store.search in process", "<= 1.3",
            f"p50/p95/p99 {percentiles(run.one_ms)} ms; server took_ms p50 "
            f"{np.median(run.took_ms):.0f}; Lite beside it p50 {lite_p50}{waited}"),
        _qps_row(model, sizes, run, where, ceiling,
                 f"Lite FLAT beside it {lite_qps}; recall@10 {recall:.3f}"),
        _batched_row(model, sizes, run, f"{where}, vs batched encode + search", batched_qps,
                     "the system's own ceiling with the store in its own processes"),
        Row("search", f"Milvus server {index} recall@10 vs exact, {n} uniform vectors",
            recall, "", 1.0, "exact (numpy brute force)", ">= 0.95",
            f"{len(queries)} held-out queries; Lite FLAT {lite_recall}; M/efConstruction/ef "
            f"16/200/{HNSW_EF}; ef {WIDE_EF}: {wide_recall:.3f} (uniform vectors in {embedder.dim} "
            "dimensions: the hardest case for a graph index)"),
        Row("search", f"Milvus server {index} recall@10 vs exact, {n} clustered vectors",
            clustered[0], "", 1.0, "exact (numpy brute force)", ">= 0.95",
            f"{sizes.store_queries} held-out queries of the same mixture (like real "
            f"embeddings); ef {HNSW_EF}; ef {WIDE_EF}: {clustered[1]:.3f}"),
    ]


def top10_rows(store: Any, queries: np.ndarray) -> list[list[int]]:
    """Row numbers (ids ``v<n>``) of each query's top 10 in the store."""
    return [[int(h.id[1:]) for h in hits] for hits in store.search(queries, k=10)]


def search_ids(uri: str, queries: np.ndarray, hnsw_ef: int) -> list[list[int]]:
    """Top-10 row numbers of the server's "bench" collection, searched with this HNSW ef."""
    from retrieval.stores.milvus import MilvusStore

    with MilvusStore(uri, "bench", hnsw_ef=hnsw_ef, create=False) as store:
        return top10_rows(store, queries)


def clustered_recalls(
    uri: str, model: str, embedder: Any, sizes: Sizes
) -> tuple[float, float]:
    """HNSW recall@10 (at mmrag's ef and at ``WIDE_EF``) on clustered vectors like real
    embeddings, in the server's "bench" collection refilled with them."""
    from mmrag.bench.store import dataset, exact_top_k, recall_at_k
    from retrieval.stores.milvus import MilvusStore

    base, queries, _, _ = dataset("clustered", sizes.vectors, sizes.store_queries, embedder.dim)
    with MilvusStore(uri, "bench") as store:
        store.drop()
    fill_search_db(uri, model, embedder, base, index_type="HNSW")
    truth, _ = exact_top_k(base, queries, 10)
    del base
    with MilvusStore(uri, "bench", create=False) as store:
        store.wait_until_indexed(timeout=600.0)
    return (recall_at_k(search_ids(uri, queries, HNSW_EF), truth),
            recall_at_k(search_ids(uri, queries, WIDE_EF), truth))


def ann_search_rows(
    model: str, embedder: Any, ceiling: float, sizes: Sizes, work: Path, log: Callable[[str], None]
) -> list[Row]:
    """N-client QPS over clustered vectors (like real embeddings) with IVF_FLAT on Lite, and
    that index's recall@10 against exact search on held-out queries of the same mixture."""
    from mmrag.bench.store import dataset, exact_top_k, recall_at_k
    from retrieval.stores import open_store

    n = sizes.ann_vectors
    base, held_out, _, _ = dataset("clustered", n, sizes.store_queries, embedder.dim)
    db = work / f"ivf-{model}-{n}.db"  # Lite file names: at most 36 characters
    fill_search_db(db, model, embedder, base, index_type="IVF_FLAT")
    store = open_store(str(db), "bench")
    found = top10_rows(store, held_out)
    in_process = batched_ceiling(store, embedder, sizes)
    store.close()
    truth, _ = exact_top_k(base, held_out, 10)
    recall = recall_at_k(found, truth)
    del base
    run = serve_and_load(model, db, sizes, one_client=False,
                         env_extra={"MMRAG_INDEX_TYPE": "IVF_FLAT"})
    log(f"search {model} IVF_FLAT {size_label(n)} clustered: {run.qps:.1f} qps "
        f"{percentiles(run.many_ms)}, recall@10 {recall:.3f}")
    label = f"{size_label(n)} clustered vectors, IVF_FLAT"
    return [
        _qps_row(model, sizes, run, label, ceiling,
                 f"MMRAG_INDEX_TYPE=IVF_FLAT; recall@10 {recall:.3f} on held-out queries of "
                 "the same mixture"),
        _batched_row(model, sizes, run, f"{label}, vs batched encode + search", in_process,
                     "the system's own ceiling with this index"),
        Row(
            "search",
            f"Lite IVF_FLAT recall@10 vs exact, {label}",
            recall,
            "",
            1.0,
            "exact (numpy)",
            ">= 0.95",
            f"{len(held_out)} held-out queries",
        ),
    ]


def _qps_row(model: str, sizes: Sizes, run: Served, what: str, ceiling: float, note: str) -> Row:
    """N-client HTTP QPS against bare text encode at the text batch size (target 0.8)."""
    return Row(
        "search",
        f"{model} HTTP QPS, {sizes.clients} clients, {what}",
        run.qps,
        "q/s",
        ceiling,
        f"bare text encode, batch {sizes.text_batch}",
        ">= 0.8",
        f"p50/p95/p99 {percentiles(run.many_ms)} ms; {note}",
    )


def _batched_row(
    model: str, sizes: Sizes, run: Served, what: str, in_process: float, note: str
) -> Row:
    """N-client HTTP QPS against the in-process batched encode + search (no target)."""
    return Row(
        "search",
        f"{model} HTTP QPS, {sizes.clients} clients, {what}",
        run.qps,
        "q/s",
        in_process,
        f"encode {sizes.clients} texts + one store.search of {sizes.clients}, in process",
        "",
        note,
    )


def _encode_and_search(store: Any, embedder: Any, texts: list[str]) -> None:
    store.search(embedder.embed_texts(texts), k=10)


def fill_search_db(
    db: Path | str, model: str, embedder: Any, vectors: np.ndarray, index_type: str = "auto"
) -> None:
    """A collection "bench" of ``vectors`` (ids v0, v1, ...) recording ``model``'s random
    checkpoint as its spec, flushed; kept when already full."""
    from retrieval.stores import open_store
    from retrieval.types import Record

    spec = {"model": model, "pretrained": None, "checkpoint": str(checkpoint_for(model))}
    store = open_store(str(db), "bench", index_type=index_type)
    try:
        if store.exists() and store.count() >= len(vectors):
            return
        store.ensure_collection(embedder.dim, embedder.model_id, spec=spec)
        for start in range(0, len(vectors), 1000):
            store.add(
                [
                    Record(id=f"v{start + i}", vector=v, source=f"/img/{start + i}.jpg")
                    for i, v in enumerate(vectors[start : start + 1000])
                ]
            )
        store.flush()
    finally:
        store.close()


def batched_ceiling(store: Any, embedder: Any, sizes: Sizes) -> float:
    """Queries/s of "encode N texts, then one store.search of N" in process, no HTTP: what the
    server's two micro-batchers do, and so the most it can serve N clients."""
    batch_q = unique_queries(sizes.clients * 8, seed=23)
    groups = [batch_q[i : i + sizes.clients] for i in range(0, len(batch_q), sizes.clients)]

    def search_all() -> None:
        for group in groups:
            _encode_and_search(store, embedder, group)

    search_all()  # warm every batch shape first: a steady state, as the server's is
    return len(batch_q) / seconds(search_all)
