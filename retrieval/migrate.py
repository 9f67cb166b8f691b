"""Copy a collection between Milvus deployments (e.g. Lite file -> server) without re-embedding.

Rows are read in id order (keyset paging) and each batch's ids are looked up in the target
first, so only missing rows are read with their vectors and written: an interrupted migration
resumes where it stopped. At the end every source id must be in the target, and a random
sample of rows must carry the same fields and vectors (cosine >= ``MIN_COSINE``).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from retrieval.errors import ConfigError
from retrieval.stores import open_store
from retrieval.stores.base import VectorStore
from retrieval.types import Record

MIN_COSINE = 0.9999

Progress = Callable[[int], None]


@dataclass
class MigrateReport:
    """What a migration copied and what the verification found."""

    source_count: int = 0
    target_count: int = 0
    copied: int = 0
    skipped: int = 0
    missing: list[str] = field(default_factory=list)
    sampled: int = 0
    mismatched: list[str] = field(default_factory=list)
    min_cosine: float = 1.0
    elapsed_s: float = 0.0

    @property
    def verified(self) -> bool:
        """Every source row is in the target, and the sample matched."""
        return not self.missing and not self.mismatched

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready report."""
        return {
            "source_count": self.source_count,
            "target_count": self.target_count,
            "copied": self.copied,
            "skipped": self.skipped,
            "missing": len(self.missing),
            "sampled": self.sampled,
            "mismatched": len(self.mismatched),
            "min_cosine": round(self.min_cosine, 6),
            "verified": self.verified,
            "elapsed_s": round(self.elapsed_s, 3),
        }


def _same(a: Record, b: Record) -> float:
    """Cosine of two records' vectors, or -1 when any stored field differs."""
    fields = ("source", "caption", "modality", "model_id")
    if any(getattr(a, f) != getattr(b, f) for f in fields) or dict(a.metadata) != dict(
        b.metadata
    ):
        return -1.0
    va, vb = np.asarray(a.vector, np.float64), np.asarray(b.vector, np.float64)
    if va.shape != vb.shape or not va.size:
        return -1.0
    norms = float(np.linalg.norm(va) * np.linalg.norm(vb))
    return float(va @ vb) / max(norms, 1e-12)


def copy_collection(
    source: VectorStore,
    target: VectorStore,
    *,
    batch_size: int = 1000,
    sample: int = 200,
    seed: int | None = None,
    progress: Progress | None = None,
) -> MigrateReport:
    """Copy every row of ``source`` missing from ``target``, then verify (see module doc)."""
    started = time.perf_counter()
    report = MigrateReport()
    if not source.exists():
        raise ConfigError(f"source collection {source.collection!r} does not exist")
    info = source.info()
    # refuses another model; records the source's model spec on a new target
    target.ensure_collection(info.dim, info.model_id, spec=source.model_spec())
    ids: list[str] = []
    for batch in source.iterate(batch_size=batch_size, with_vectors=False):
        batch_ids = [r.id for r in batch]
        ids.extend(batch_ids)
        have = target.existing_ids(batch_ids)
        todo = [i for i in batch_ids if i not in have]
        report.skipped += len(batch_ids) - len(todo)
        if todo:
            report.copied += target.upsert(source.get(todo, with_vectors=True))
        if progress is not None:
            progress(len(batch_ids))
    target.flush()
    report.source_count = len(ids)
    for start in range(0, len(ids), batch_size):
        chunk = ids[start : start + batch_size]
        have = target.existing_ids(chunk)
        report.missing.extend(i for i in chunk if i not in have)
    report.target_count = target.count()
    chosen = random.Random(seed).sample(ids, min(sample, len(ids)))
    for start in range(0, len(chosen), batch_size):
        chunk = chosen[start : start + batch_size]
        theirs = {r.id: r for r in target.get(chunk, with_vectors=True)}
        for mine in source.get(chunk, with_vectors=True):
            other = theirs.get(mine.id)
            cosine = _same(mine, other) if other is not None else -1.0
            report.min_cosine = min(report.min_cosine, cosine)
            report.sampled += 1
            if cosine < MIN_COSINE:
                report.mismatched.append(mine.id)
    report.elapsed_s = time.perf_counter() - started
    return report


def migrate(
    from_uri: str,
    to_uri: str,
    collection: str,
    *,
    to_collection: str | None = None,
    token: str | None = None,
    to_token: str | None = None,
    index_type: str = "auto",
    batch_size: int = 1000,
    sample: int = 200,
    progress: Progress | None = None,
) -> MigrateReport:
    """Open both stores and copy ``collection`` from one URI to the other."""
    if from_uri.strip() == to_uri.strip() and (to_collection or collection) == collection:
        raise ConfigError("source and target are the same collection")
    with open_store(from_uri, collection, token=token) as source, open_store(
        to_uri, to_collection or collection, token=to_token, index_type=index_type
    ) as target:
        return copy_collection(
            source, target, batch_size=batch_size, sample=sample, progress=progress
        )
