"""Reusable semantic checks of a running system, each run on the real path and on planted bugs.

* ``semantic_precision``: text→image precision@5 of the trained colour-shape captions, judged by
  the stored metadata of the hits (catches BGR input, id/vector mix-ups, wrong query encoders).
* ``check_unit_norms``: every stored vector has unit length (catches skipped normalisation).
* ``check_self_retrieval``: a stored item's own source file, sent to ``/search/image``, comes back
  first with score 1 (catches ids/sources paired with other images' vectors, a wrong metric,
  un-normalised vectors).
* ``check_reference_embeddings``: stored vectors equal the embedding of the source decoded by an
  independent RGB reader (Pillow) (catches colour-order and decode bugs, mix-ups, another model).
* ``check_scores_are_cosines``: API scores equal the cosine of query and stored vectors, best
  first (catches a distance metric read as a similarity).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from fastapi.testclient import TestClient
from PIL import Image

from retrieval.demo.synthetic import caption_for, combinations
from retrieval.embedders.base import Embedder
from retrieval.stores.base import VectorStore
from retrieval.types import Record

PRECISION_THRESHOLD = 0.85
TRAINED = tuple(combinations(include_held_out=False))
SCORE_TOLERANCE = 1e-3
NORM_TOLERANCE = 1e-3
REFERENCE_MIN_COSINE = 0.9999
SHOWN_FAILURES = 5

Search = Callable[[str, int], list[dict[str, Any]]]


@dataclass(frozen=True)
class PrecisionReport:
    """Mean precision@k over the queried captions, and each caption's precision."""

    mean: float
    per_query: dict[str, float]
    k: int

    @property
    def passed(self) -> bool:
        """Whether the mean reaches PRECISION_THRESHOLD."""
        return self.mean >= PRECISION_THRESHOLD


@dataclass(frozen=True)
class CheckResult:
    """An invariant check: what failed (empty when it passed)."""

    name: str
    checked: int
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Whether nothing failed."""
        return self.checked > 0 and not self.failures

    def __str__(self) -> str:
        shown = "; ".join(self.failures[:SHOWN_FAILURES])
        return f"{self.name}: {len(self.failures)}/{self.checked} failed {shown}"


def api_search(client: TestClient, collection: str) -> Search:
    """A text search function through ``POST /search`` on one collection."""

    def search(query: str, k: int) -> list[dict[str, Any]]:
        body = {"query": query, "k": k, "collection": collection, "mode": "vector"}
        response = client.post("/search", json=body)  # the invariants are of CLIP ranking
        assert response.status_code == 200, response.text
        return list(response.json()["hits"])

    return search


def shows(hit: dict[str, Any], combo: tuple[str, str]) -> bool:
    """Whether a hit's stored metadata names this colour and shape."""
    meta = hit.get("metadata") or {}
    return (meta.get("colour"), meta.get("shape")) == combo


def semantic_precision(
    search: Search, combos: Sequence[tuple[str, str]] = TRAINED, k: int = 5
) -> PrecisionReport:
    """Query "a <colour> <shape>" for each combination and score the top k by metadata."""
    per_query = {}
    for combo in combos:
        query = caption_for(*combo)
        hits = search(query, k)[:k]
        per_query[query] = sum(shows(hit, combo) for hit in hits) / k
    return PrecisionReport(float(np.mean(list(per_query.values()))), per_query, k)


def stored_records(store: VectorStore, *, with_vectors: bool = True) -> list[Record]:
    """Every stored record, in id order."""
    return [r for batch in store.iterate(500, with_vectors=with_vectors) for r in batch]


def sample(records: Sequence[Record], n: int) -> list[Record]:
    """n records spread evenly over the list (deterministic)."""
    if len(records) <= n:
        return list(records)
    step = len(records) / n
    return [records[int(i * step)] for i in range(n)]


def check_unit_norms(store: VectorStore) -> CheckResult:
    """Every stored vector has L2 norm 1 (within NORM_TOLERANCE)."""
    records = stored_records(store)
    failures = [
        f"{r.id}: norm {np.linalg.norm(r.vector):.4f}"
        for r in records
        if abs(float(np.linalg.norm(r.vector)) - 1.0) > NORM_TOLERANCE
    ]
    return CheckResult("unit norms", len(records), failures)


def check_self_retrieval(
    client: TestClient, collection: str, records: Sequence[Record]
) -> CheckResult:
    """Each record's source file, as an image query, finds that record first with score ≈ 1."""
    failures = []
    for record in records:
        path = Path(record.source)
        response = client.post(
            "/search/image",
            files={"file": (path.name, path.read_bytes(), "image/png")},
            data={"k": "3", "collection": collection},
        )
        assert response.status_code == 200, response.text
        top = response.json()["hits"][0]
        if top["id"] != record.id:
            failures.append(f"{path.name} found {top['id']} instead of {record.id}")
        elif abs(top["score"] - 1.0) > SCORE_TOLERANCE:
            failures.append(f"{path.name} found itself with score {top['score']:.4f}")
    return CheckResult("self-retrieval", len(records), failures)


def reference_rgb(path: Path) -> np.ndarray:
    """The image as RGB uint8, decoded by Pillow (independently of mmrag's decoder)."""
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def check_reference_embeddings(embedder: Embedder, records: Sequence[Record]) -> CheckResult:
    """Each stored vector equals the embedding of its source decoded by Pillow (cosine)."""
    fresh = embedder.embed_images([reference_rgb(Path(r.source)) for r in records])
    failures = []
    for record, vector in zip(records, fresh, strict=True):
        stored = np.asarray(record.vector, dtype=np.float32)
        cosine = float(stored @ vector / max(float(np.linalg.norm(stored)), 1e-12))
        if cosine < REFERENCE_MIN_COSINE:
            failures.append(f"{Path(record.source).name}: cosine {cosine:.5f}")
    return CheckResult("reference embeddings", len(records), failures)


def check_scores_are_cosines(
    client: TestClient, collection: str, store: VectorStore, embedder: Embedder,
    queries: Sequence[str],
) -> CheckResult:
    """API scores equal cos(query, stored vector), in non-increasing order."""
    failures = []
    for query in queries:
        hits = api_search(client, collection)(query, 10)
        vector = embedder.embed_texts([query])[0]
        stored = {r.id: r.vector for r in store.get([h["id"] for h in hits], with_vectors=True)}
        scores = [h["score"] for h in hits]
        if any(a < b - 1e-6 for a, b in itertools.pairwise(scores)):
            failures.append(f"{query!r}: scores not best first {scores[:3]}")
        for hit in hits:
            stored_vector = np.asarray(stored[hit["id"]], dtype=np.float32)
            norm = max(float(np.linalg.norm(stored_vector)), 1e-12)
            cosine = float(vector @ stored_vector) / norm
            if abs(hit["score"] - cosine) > SCORE_TOLERANCE:
                failures.append(f"{query!r}: score {hit['score']:.4f} but cosine {cosine:.4f}")
                break
    return CheckResult("scores are cosines", len(queries), failures)
