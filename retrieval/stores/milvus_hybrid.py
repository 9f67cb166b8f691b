"""Keyword (BM25) and hybrid (vector + BM25, fused by Milvus) searches of a Milvus collection.

Milvus 2.5 added the BM25 function, its sparse index and text queries on it; Milvus Lite 2.5.1
has them. Older servers (the embedded 2.3.5 of the tests) have none: ``full_text_support``
says so from the server's version before a collection is created or a text search is sent.

RRF (the default) is Milvus's own ``hybrid_search`` with ``RRFRanker``. Weighted fusion is done
here, over the same two candidate lists, each min-max normalised: Milvus Lite 2.5.1's
``WeightedRanker`` normalises BM25 scores as if they were distances (1 - 2/pi * atan(score)),
so the best keyword match scores lowest (measured: weights 0,1 rank the exact code last).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from pymilvus import AnnSearchRequest, MilvusClient, RRFRanker

from retrieval.errors import ConfigError
from retrieval.limits import MAX_TOPK
from retrieval.stores.base import Fusion
from retrieval.stores.milvus_rows import search_params, to_hit
from retrieval.stores.milvus_schema import SPARSE_FIELD
from retrieval.types import Hit

FULL_TEXT_SINCE = (2, 5)
# Each ranking a hybrid search fuses is this deep at least (or the page's end): RRF over two
# top-10 lists misses items ranked 11th by one list and 1st by the other.
HYBRID_MIN_CANDIDATES = 50
MAX_TEXT_QUERY_CHARS = 2000
_VERSION = re.compile(r"v?(\d+)\.(\d+)(?:\.(\d+))?")


def parse_version(text: str) -> tuple[int, int, int] | None:
    """``v2.3.5`` or ``2.5.1`` as a tuple (None when it is no version)."""
    found = _VERSION.match(text.strip())
    if not found:
        return None
    return int(found[1]), int(found[2]), int(found[3] or 0)


def full_text_support(version: str, label: str, where: str) -> tuple[bool, str]:
    """Whether a Milvus of this version has BM25, and the message that says why not."""
    parsed = parse_version(version)
    if parsed is not None and parsed[:2] >= FULL_TEXT_SINCE:
        return True, ""
    shown = version.strip() or "unknown"
    return False, (
        f"{label} at {where} is Milvus {shown}; keyword and hybrid search need Milvus's BM25 "
        "full-text search, which came with Milvus 2.5. Search with mode=vector, or move the "
        "collection to Milvus 2.5 or later (or Milvus Lite) with `mmrag migrate`"
    )


def check_texts(texts: Sequence[str]) -> list[str]:
    """The text queries, stripped; a ConfigError for an empty or overlong one."""
    cleaned = [str(t).strip() for t in texts]
    for text in cleaned:
        if not text:
            raise ConfigError("a keyword query is empty (or only whitespace); type some words")
        if len(text) > MAX_TEXT_QUERY_CHARS:
            raise ConfigError(
                f"a keyword query is {len(text)} characters; at most {MAX_TEXT_QUERY_CHARS}"
            )
    return cleaned


def check_fusion(fusion: Fusion) -> None:
    """A ConfigError for a fusion that cannot run."""
    if fusion.ranker == "rrf":
        if not 1 <= fusion.rrf_k <= 16384:
            raise ConfigError(f"rrf_k must be within 1..16384, got {fusion.rrf_k}")
        return
    if fusion.ranker == "weighted":
        weights = tuple(float(w) for w in fusion.weights)
        if len(weights) != 2 or any(not 0.0 <= w <= 1.0 for w in weights) or sum(weights) <= 0:
            raise ConfigError(
                "hybrid weights must be two numbers within 0..1 (vector, keyword), not both 0, "
                f"e.g. 0.7,0.3; got {','.join(str(w) for w in fusion.weights)}"
            )
        return
    raise ConfigError(f"ranker must be rrf or weighted, got {fusion.ranker!r}")


def _normalised(hits: Sequence[Hit]) -> dict[str, float]:
    """Each hit's score min-max scaled to 0..1 within its list (all 1 when they are equal)."""
    if not hits:
        return {}
    scores = [h.score for h in hits]
    low, high = min(scores), max(scores)
    span = high - low
    return {h.id: 1.0 if span <= 0 else (h.score - low) / span for h in hits}


def weighted_fusion(
    dense: Sequence[Hit], sparse: Sequence[Hit], weights: tuple[float, float]
) -> list[Hit]:
    """Both lists fused by weighted, min-max normalised scores (ties: the better rank first)."""
    by_id = {h.id: h for h in [*sparse, *dense]}
    vector, keyword = _normalised(dense), _normalised(sparse)
    rank = {h.id: i for i, h in enumerate(dense)}
    for i, h in enumerate(sparse):
        rank[h.id] = min(rank.get(h.id, i), i)
    fused = {i: weights[0] * vector.get(i, 0.0) + weights[1] * keyword.get(i, 0.0) for i in by_id}
    order = sorted(by_id, key=lambda i: (-fused[i], rank[i]))
    return [replace(by_id[i], score=fused[i]) for i in order]


def keyword_search(
    client: MilvusClient,
    collection: str,
    texts: Sequence[str],
    k: int,
    *,
    offset: int,
    expr: str | None,
    fields: list[str],
    options: dict[str, Any],
) -> list[list[Hit]]:
    """BM25 top-k per text query; ``options`` carries the store's timeout and consistency."""
    result = client.search(
        collection,
        data=check_texts(texts),
        anns_field=SPARSE_FIELD,
        limit=k,
        offset=offset,
        filter=expr or "",
        output_fields=fields,
        search_params={"metric_type": "BM25"},
        **options,
    )
    return [[to_hit(found) for found in per_query] for per_query in result]


def hybrid_search(
    client: MilvusClient,
    collection: str,
    query: tuple[np.ndarray, str],
    k: int,
    *,
    offset: int,
    expr: str | None,
    fusion: Fusion,
    index: tuple[str, str],
    hnsw_ef: int,
    fields: list[str],
    options: dict[str, Any],
) -> list[Hit]:
    """One query's vector and text rankings, fused by Milvus (RRF or weighted scores).

    ``index``: the vector index's type and metric.
    """
    vector, text = query
    index_type, metric = index
    check_fusion(fusion)
    depth = min(MAX_TOPK, max(HYBRID_MIN_CANDIDATES, k + offset))
    dense_params = {"metric_type": metric, "params": search_params(index_type, depth, hnsw_ef)}
    if fusion.ranker == "weighted":
        lists = [
            client.search(
                collection, data=data, anns_field=field, limit=depth, filter=expr or "",
                output_fields=fields, search_params=params, **options,
            )[0]
            for data, field, params in (
                ([np.asarray(vector, dtype=np.float32).tolist()], "vector", dense_params),
                (check_texts([text]), SPARSE_FIELD, {"metric_type": "BM25"}),
            )
        ]
        dense_hits, sparse_hits = ([to_hit(found) for found in got] for got in lists)
        fused = weighted_fusion(dense_hits, sparse_hits, fusion.weights)
        return fused[offset : offset + k]
    filtered = {"expr": expr} if expr else {}
    dense = AnnSearchRequest(
        data=[np.asarray(vector, dtype=np.float32).tolist()],
        anns_field="vector",
        param=dense_params,
        limit=depth,
        **filtered,
    )
    sparse = AnnSearchRequest(
        data=check_texts([text]),
        anns_field=SPARSE_FIELD,
        param={"metric_type": "BM25"},
        limit=depth,
        **filtered,
    )
    result = client.hybrid_search(
        collection,
        [dense, sparse],
        RRFRanker(fusion.rrf_k),
        limit=k,
        offset=offset,
        output_fields=fields,
        **options,
    )
    return [to_hit(found) for found in result[0]] if result else []
