"""The ingest job: a pipe that reads, dedups, decodes, embeds in full batches and upserts."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ingest.loading import Loaded, decode_loaded, read_item
from ingest.sources import SourceItem
from pipelines import pipe
from retrieval.components import Components
from retrieval.types import Modality, Record


@dataclass(frozen=True)
class IngestOptions:
    """How a job runs: model batch size, decode workers, insert batch size, pixel cap."""

    batch_size: int = 32
    workers: int = 2
    insert_batch_size: int = 256
    dedup_batch_size: int = 256
    max_pixels: int = 50_000_000


@dataclass(frozen=True)
class Reject:
    """An item the job could not ingest, and why (one line)."""

    source: str
    reason: str


@dataclass
class IngestSummary:
    """What a job did: counts, rejects and timing."""

    scanned: int = 0
    ingested: int = 0
    duplicates: int = 0
    rejected: int = 0
    elapsed_s: float = 0.0
    rejects: list[Reject] = field(default_factory=list)

    @property
    def throughput(self) -> float:
        """Items ingested per second."""
        return self.ingested / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "scanned": self.scanned,
            "ingested": self.ingested,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "elapsed_s": round(self.elapsed_s, 3),
            "throughput_per_s": round(self.throughput, 2),
        }


class _Tally:
    """Counts outcomes as rows pass the routing filter (called from one pipeline thread)."""

    def __init__(self, summary: IngestSummary, on_progress: Callable[[int], None] | None) -> None:
        self.summary = summary
        self.on_progress = on_progress
        self.seen: set[str] = set()
        self.lock = threading.Lock()

    def route(self, loaded: Loaded) -> bool:
        """Keep only items that go to the model; count the rest."""
        with self.lock:
            self.summary.scanned += 1
            if loaded.error is not None:
                self.summary.rejected += 1
                self.summary.rejects.append(Reject(loaded.item.source, loaded.error))
            elif loaded.duplicate:
                self.summary.duplicates += 1
        if not loaded.ready and self.on_progress is not None:
            self.on_progress(1)
        return loaded.ready

    def mark_known(self, batch: list[Loaded], stored: set[str]) -> list[Loaded]:
        """Flag items already stored, or seen earlier in this run, as duplicates."""
        out = []
        with self.lock:
            for loaded in batch:
                if loaded.error is None and (loaded.id in stored or loaded.id in self.seen):
                    out.append(replace(loaded, duplicate=True, data=None))
                    continue
                if loaded.error is None:
                    self.seen.add(loaded.id)
                out.append(loaded)
        return out


def _record(loaded: Loaded, vector: np.ndarray, model_id: str) -> Record:
    item: SourceItem = loaded.item
    return Record(
        id=loaded.id,
        vector=vector,
        source=item.source,
        caption=item.caption,
        modality=Modality.IMAGE,
        metadata=dict(item.metadata),
        model_id=model_id,
    )


def run_ingest(
    components: Components,
    items: Iterable[SourceItem],
    options: IngestOptions | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> IngestSummary:
    """Ingest items into the configured collection; rerunning adds nothing already stored."""
    opts = options or IngestOptions()
    embedder = components.embedder
    store = components.store
    store.ensure_collection(embedder.dim, embedder.model_id)
    summary = IngestSummary()
    tally = _Tally(summary, on_progress)
    started = time.perf_counter()

    def mark_known(batch: list[Loaded]) -> list[Loaded]:
        ids = [loaded.id for loaded in batch if loaded.error is None]
        return tally.mark_known(batch, store.existing_ids(ids) if ids else set())

    def decode(loaded: Loaded) -> Loaded:
        return decode_loaded(loaded, embedder.prepare_image, opts.max_pixels)

    def embed(batch: list[Loaded]) -> list[np.ndarray]:
        return list(embedder.embed_prepared([loaded.prepared for loaded in batch]))

    def upsert(batch: list[Loaded], vectors: list[np.ndarray]) -> list[int]:
        store.upsert([_record(lo, vec, embedder.model_id) for lo, vec in zip(batch, vectors)])
        if on_progress is not None:
            on_progress(len(batch))
        return [1] * len(batch)

    workers = {"workers": max(1, opts.workers)}
    job = (
        pipe.input("item")
        .map("item", "loaded", read_item, config=workers)
        .map("loaded", "loaded", mark_known, config={"batch_size": opts.dedup_batch_size})
        .map("loaded", "loaded", decode, config=workers)
        .filter("loaded", "loaded", "loaded", tally.route)
        .map("loaded", "vector", embed, config={"batch_size": opts.batch_size})
        .map(("loaded", "vector"), "n", upsert, config={"batch_size": opts.insert_batch_size})
        .output("n")
    )
    for row in job.stream(items):
        summary.ingested += int(row[0] if isinstance(row, (list, tuple)) else row)
    store.flush()
    summary.elapsed_s = time.perf_counter() - started
    return summary
