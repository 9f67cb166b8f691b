"""The ingest job: one mmrag ``pipe`` that expands, dedups, reads, decodes, embeds and upserts.

Stages (each its own thread; ``workers`` stages run on pools)::

    item --flat_map expand--> work             videos -> sampled frames (decoded here);
                                               text documents -> passages (split here)
         --map precheck (batch)-->             known ids (manifest id, frame) vs store + run
         --map read (fetch_workers)-->         file bytes / URL fetch, content-hash id
         --map check (batch)-->                content ids vs store + run
         --map decode (workers)-->             decode + model preprocessing
         --filter route-->                     count rejects and duplicates; keep new items
         --map embed (batch_size)-->           full model batches (passages: the text tower)
         --map upsert (insert_batch_size)-->   batched writes; one flush at the end

Already-stored items are found by id before anything is read (manifest ids, video frames) or
right after reading (content hashes), so a rerun never decodes or embeds them again. A manifest
id repeated in one run with another source is a ``conflict`` reject (the first row is kept); with
the same source it is a duplicate. Writers to a Milvus server take a lock shared by the ingests
on this machine (``ingest.write_lock``) and check the ids again under it, so two ingests at once
never both count (or write) one item. Milvus
(Lite 2.5.1 included) keeps every acknowledged upsert across a ``kill -9`` of the job even before
a flush, so the store itself is the checkpoint: a rerun finishes the work.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np

from ingest.decoding import ImageDecoding
from ingest.expand import Expander
from ingest.fetch import Fetcher, FetchOptions
from ingest.loading import Work, decode_with, read_work
from ingest.rejects import RejectsFile, clean_reason
from ingest.sources import SourceItem
from ingest.write_lock import WriteGuard
from pipelines import pipe
from pipelines.errors import PipelineError
from retrieval.components import Components
from retrieval.embedders.base import Embedder
from retrieval.embedders.tagged import EmbeddingModel
from retrieval.errors import MmragError
from retrieval.image_rows import (
    DEFAULT_MAX_BYTES,
    ensure_collection_for,
    fit_caption,
    image_record,
    write_rows,
)
from retrieval.imaging import DEFAULT_MAX_PIXELS
from retrieval.model_spec import spec_from_settings
from retrieval.source_names import display_text
from retrieval.text_rows import passage_record, text_budget
from retrieval.types import Record


class ProgressSink(Protocol):
    """Receives progress: items finished, and growth of the expected total (video frames)."""

    def advance(self, n: int) -> None:
        """n more items are done (ingested, skipped or rejected)."""

    def add_total(self, n: int) -> None:
        """n more items are expected than first counted."""


@dataclass(frozen=True)
class IngestOptions:
    """How a job runs: batch sizes, thread counts, caps and video sampling."""

    batch_size: int = 32
    workers: int = 2
    fetch_workers: int = 16
    insert_batch_size: int = 256
    dedup_batch_size: int = 64
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_bytes: int = DEFAULT_MAX_BYTES
    video_every_s: float = 2.0
    fetch: FetchOptions = field(default_factory=FetchOptions)
    rejects_kept: int = 1000


def _no_turns(step: str) -> AbstractContextManager[object]:
    """The default turn: none (a CLI job has the machine to itself)."""
    return nullcontext()


def _never() -> bool:
    return False


@dataclass(frozen=True)
class JobHooks:
    """What a caller running the job beside other work (the API server) plugs into it.

    ``stop`` is asked between batches: once true, no new item is taken and works not yet
    embedded are dropped uncounted; what was written stays (a rerun finishes the rest).
    ``turn(step)`` is held around each model call (``"model"``) and each store write
    (``"write"``), so the caller can make them take turns with its own work. ``fetcher``
    replaces the job's URL fetcher (the API's fetches through its SSRF guard).
    """

    stop: Callable[[], bool] = _never
    turn: Callable[[str], AbstractContextManager[object]] = _no_turns
    fetcher: Fetcher | None = None


@dataclass(frozen=True)
class Reject:
    """An item the job could not ingest, why (one line), and at which stage."""

    source: str
    reason: str
    stage: str = "read"


@dataclass
class IngestSummary:
    """What a job did: counts, rejects (the first ``rejects_kept``) and timing.

    ``captions_truncated`` counts stored rows whose caption was cut to the store's caption
    field; ``truncated`` lists the first of their sources. ``skipped_by_type`` counts the files
    of a folder that are of no type mmrag ingests (``.psd``, ``.txt``): never read, never
    silent, and not part of ``scanned``. Text documents count one item per passage;
    ``passages_removed`` counts old passages of edited documents taken out of the store, and
    ``text_recoded`` the documents that were not valid UTF-8 (decoded with U+FFFD
    replacements; ``recoded`` names the first of them).
    """

    ingested: int = 0
    duplicates: int = 0
    rejected: int = 0
    elapsed_s: float = 0.0
    rejects: list[Reject] = field(default_factory=list)
    rejected_by_stage: dict[str, int] = field(default_factory=dict)
    rejects_file: str | None = None
    captions_truncated: int = 0
    truncated: list[str] = field(default_factory=list)
    skipped_by_type: dict[str, int] = field(default_factory=dict)
    nodes: dict[str, dict[str, int]] = field(default_factory=dict)  # Ray: stage -> node -> works
    passages_removed: int = 0
    text_recoded: int = 0
    recoded: list[str] = field(default_factory=list)

    @property
    def skipped(self) -> int:
        """Files skipped because of their type."""
        return sum(self.skipped_by_type.values())

    def skipped_text(self) -> str:
        """``2 skipped: .psd, .txt`` (most frequent type first; counts when more than one)."""
        ranked = sorted(self.skipped_by_type.items(), key=lambda kv: (-kv[1], kv[0]))
        names = [f"{kind} ({n})" if n > 1 else kind for kind, n in ranked]
        return f"{self.skipped} skipped: {', '.join(names)}" if names else ""

    @property
    def scanned(self) -> int:
        """Items that went through the job (each video frame counts)."""
        return self.ingested + self.duplicates + self.rejected

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
            "rejected_by_stage": dict(sorted(self.rejected_by_stage.items())),
            "rejects_file": self.rejects_file,
            "captions_truncated": self.captions_truncated,
            "skipped": self.skipped,
            "skipped_by_type": dict(sorted(self.skipped_by_type.items())),
            **({"nodes": self.nodes} if self.nodes else {}),
            "passages_removed": self.passages_removed,
            "text_recoded": self.text_recoded,
            "elapsed_s": round(self.elapsed_s, 3),
            "throughput_per_s": round(self.throughput, 2),
        }


class _Tally:
    """Counts outcomes and dedups ids within the run (called from several pipeline threads)."""

    def __init__(
        self,
        summary: IngestSummary,
        progress: ProgressSink | None,
        rejects: RejectsFile | None,
        kept: int,
    ) -> None:
        self.summary = summary
        self.progress = progress
        self.rejects = rejects
        self.kept = kept
        self.seen: set[str] = set()
        self.claimed: dict[str, str] = {}  # manifest id -> the source that first claimed it
        self.documents: dict[str, tuple[str, str]] = {}  # document key -> (doc_id, source)
        self.lock = threading.Lock()

    def claim(self, key: str, doc_id: str, source: str) -> str | None:
        """None for a document key new in this run (or seen with this text), else why not."""
        with self.lock:
            first = self.documents.setdefault(key, (doc_id, source))
        if first[0] == doc_id:
            return None
        return (
            f"document {key!r} is repeated with other text; the first, from "
            f"{display_text(first[1])}, was kept: give each document its own id"
        )

    def recoded(self, source: str, note: str) -> None:
        """Count a document decoded with replacements (the note goes to the log's reader)."""
        with self.lock:
            self.summary.text_recoded += 1
            if len(self.summary.recoded) < self.kept:
                self.summary.recoded.append(f"{display_text(source)}: {clean_reason(note)}")

    def removed(self, n: int) -> None:
        """Count old passages of edited documents removed from the store."""
        with self.lock:
            self.summary.passages_removed += n

    def route(self, work: Work) -> bool:
        """Keep only works that go to the model; count and record the rest."""
        if work.ready:
            return True
        if not work.settled:  # nothing decoded it: a bug, but never lose the item silently
            work = work.reject("internal: item was neither decoded nor rejected", "decode")
        if work.error is not None:
            self.reject(work.source, work.error, work.stage)
        else:
            with self.lock:
                self.summary.duplicates += 1
        if self.progress is not None:
            self.progress.advance(1)
        return False

    def reject(self, source: str, reason: str, stage: str, *, advance: bool = False) -> None:
        """Count a reject and write it to the rejects file."""
        with self.lock:
            summary = self.summary
            summary.rejected += 1
            summary.rejected_by_stage[stage] = summary.rejected_by_stage.get(stage, 0) + 1
            if len(summary.rejects) < self.kept:
                summary.rejects.append(Reject(display_text(source), clean_reason(reason), stage))
        if self.rejects is not None:
            self.rejects.write(source, reason, stage)
        if advance and self.progress is not None:
            self.progress.advance(1)

    def ingested(self, n: int, truncated: list[str]) -> None:
        """Count rows written to the store, and those of them whose caption was cut."""
        with self.lock:
            summary = self.summary
            summary.ingested += n
            summary.captions_truncated += len(truncated)
            room = max(0, self.kept - len(summary.truncated))
            summary.truncated.extend(display_text(s) for s in truncated[:room])
        if self.progress is not None and n:
            self.progress.advance(n)

    def duplicates(self, n: int) -> None:
        """Count works found stored when they were about to be written (another writer won)."""
        with self.lock:
            self.summary.duplicates += n
        if self.progress is not None and n:
            self.progress.advance(n)

    def mark_known(self, batch: list[Work], stored: set[str]) -> list[Work]:
        """Flag works already stored, or seen earlier in this run, as duplicates."""
        out = []
        with self.lock:
            for work in batch:
                if work.settled or work.checked or not work.id:
                    out.append(work)
                elif work.id in stored:
                    out.append(replace(work, duplicate=True, checked=True, data=None,
                                       prepared=None))
                elif work.id in self.seen:
                    out.append(self._repeat(work))
                else:
                    self.seen.add(work.id)
                    if work.id == work.item.id:
                        self.claimed[work.id] = work.source
                    out.append(replace(work, checked=True))
        return out

    def _repeat(self, work: Work) -> Work:
        """A work whose id this run saw before: a duplicate, or a conflict when the manifest
        gave the id to another source."""
        first = self.claimed.get(work.id)
        if first is None or first == work.source:
            return replace(work, duplicate=True, checked=True, data=None, prepared=None)
        return work.reject(
            f"id {work.id!r} is repeated with another image; the first row, with "
            f"{display_text(first)}, was kept: give each image its own id",
            "conflict",
        )


def run_ingest(
    components: Components,
    items: Iterable[SourceItem],
    options: IngestOptions | None = None,
    progress: ProgressSink | None = None,
    rejects: RejectsFile | None = None,
    hooks: JobHooks | None = None,
    summary: IngestSummary | None = None,
) -> IngestSummary:
    """Ingest items into the configured collection; rerunning adds nothing already stored.

    ``summary``, when given, is filled in place (a caller may read its counts while the job
    runs); ``hooks`` let a server stop the job between batches and share its cores.
    """
    opts = options or IngestOptions()
    hooks = hooks or JobHooks()
    embedder = components.embedder
    store = components.store
    # recorded so readers can load the model from the collection alone; they follow it only
    # once `mmrag reindex` moved the name (retrieval/follow_model.py)
    model = EmbeddingModel.of(embedder, spec_from_settings(components.settings))
    ensure_collection_for(store, model)
    guard = WriteGuard.for_store(store)
    summary = summary if summary is not None else IngestSummary()
    summary.rejects_file = str(rejects.path) if rejects is not None else None
    tally = _Tally(summary, progress, rejects, opts.rejects_kept)
    fetcher = hooks.fetcher or Fetcher(opts.fetch, connections=opts.fetch_workers)
    started = time.perf_counter()

    def planned(n: int) -> None:
        if progress is not None and n > 1:
            progress.add_total(n - 1)

    expander = Expander(
        store.existing_ids, embedder.prepare_image, opts.video_every_s, opts.max_pixels, planned,
        budget=text_budget(embedder), remove_where=store.delete_where, documents=tally,
        max_bytes=opts.max_bytes,
    )

    def check(batch: list[Work]) -> list[Work]:
        pending = [w for w in batch if not w.settled and not w.checked and w.id]
        # frames and passages were checked by expand
        ids = [w.id for w in pending if w.prepared is None and w.text is None]
        return tally.mark_known(batch, store.existing_ids(ids) if ids else set())

    def read(work: Work) -> Work:
        return read_work(work, fetcher, opts.max_bytes)

    # threads, worker processes, or JPEGs left for the device (MMRAG_DECODE_WORKERS, _JPEG_DECODER)
    decoding = ImageDecoding.open(components.settings, embedder, opts.max_pixels, opts.workers)
    decoder = decoding.decoder()

    def decode(work: Work) -> Work:
        return decode_with(work, decoder)

    def route(work: Work) -> bool:
        return not hooks.stop() and tally.route(work)  # stopped: dropped before the model

    def embed(batch: list[Work]) -> list[np.ndarray | str]:
        with hooks.turn("model"):
            return decoding.embed(batch, lambda works: embed_mixed(embedder, works))

    def embedded(work: Work, vector: np.ndarray | str) -> bool:
        if isinstance(vector, str):  # a JPEG neither the device nor the CPU could decode
            tally.reject(work.source, vector, "decode", advance=True)
        return not isinstance(vector, str)

    def upsert(batch: list[Work], vectors: list[np.ndarray]) -> list[int]:
        with guard:
            stored = guard.stored([w.id for w in batch])
            fresh = [(w, v) for w, v in zip(batch, vectors, strict=True) if w.id not in stored]
            records = [row_record(w, v, model) for w, v in fresh]
            with hooks.turn("write"):
                refused = write_rows(store, records, new=True)
        for index, reason in refused.items():
            tally.reject(fresh[index][0].source, reason, "store", advance=True)
        tally.duplicates(len(batch) - len(fresh))
        truncated = [
            w.source for i, (w, _) in enumerate(fresh)
            if i not in refused and w.text is None and fit_caption(w.item.caption)[1]
        ]
        tally.ingested(len(records) - len(refused), truncated)
        return [1] * len(batch)

    queue = max(2 * opts.batch_size, 64)  # bounded queues: bytes and model inputs in flight
    job = (
        pipe.input("item")
        .flat_map("item", "work", expander.expand, config={"queue_size": queue})
        .map("work", "work", check,
             config={"batch_size": opts.dedup_batch_size, "queue_size": queue})
        .map("work", "work", read, config={"workers": opts.fetch_workers, "queue_size": queue})
        .map("work", "work", check,
             config={"batch_size": opts.dedup_batch_size, "queue_size": queue})
        .map("work", "work", decode,
             config={"workers": decoding.threads(opts.workers), "queue_size": queue})
        .filter("work", "work", "work", route, config={"queue_size": queue})
        .map("work", "vector", embed,
             config={"batch_size": opts.batch_size, "queue_size": 2 * opts.insert_batch_size})
        .filter(("work", "vector"), ("work", "vector"), ("work", "vector"), embedded)
        .map(("work", "vector"), "n", upsert, config={"batch_size": opts.insert_batch_size})
        .output("n")
    )
    try:
        for _ in job.stream(without_skipped(until_stopped(items, hooks.stop), summary)):
            pass
    except PipelineError as exc:
        cause = exc.__cause__
        if isinstance(cause, MmragError):
            raise cause from exc
        raise
    finally:
        fetcher.close()
        guard.close()
        decoding.close()
    store.flush()
    summary.elapsed_s = time.perf_counter() - started
    return summary


def embed_mixed(embedder: Embedder, batch: list[Work]) -> list[np.ndarray]:
    """Vectors for a batch in order: passages through the text tower, the rest as images."""
    texts = [i for i, work in enumerate(batch) if work.text is not None]
    images = [i for i, work in enumerate(batch) if work.text is None]
    vectors: list[np.ndarray] = [np.empty(0)] * len(batch)
    if texts:
        for i, vector in zip(texts, embedder.embed_texts([batch[i].text or "" for i in texts]),
                             strict=True):
            vectors[i] = vector
    if images:
        for i, vector in zip(images, embedder.embed_prepared([batch[i].prepared for i in images]),
                             strict=True):
            vectors[i] = vector
    return vectors


def row_record(work: Work, vector: np.ndarray, model: EmbeddingModel) -> Record:
    """The stored row of a work: a passage's, or an image's (or video frame's)."""
    if work.text is not None:
        return passage_record(work.id, vector, model, source=work.source, text=work.text,
                              metadata=work.fields)
    return image_record(work.id, vector, model, source=work.source, caption=work.item.caption,
                        metadata=work.fields)


def until_stopped(items: Iterable[SourceItem], stop: Callable[[], bool]) -> Iterator[SourceItem]:
    """The items, until ``stop()`` says the job was stopped."""
    for item in items:
        if stop():
            return
        yield item


def without_skipped(items: Iterable[SourceItem], summary: IngestSummary) -> Iterator[SourceItem]:
    """The items to ingest; files skipped for their type are counted in the summary instead
    (one thread iterates: the pipeline's input)."""
    for item in items:
        if item.skipped is None:
            yield item
        else:
            counts = summary.skipped_by_type
            counts[item.skipped] = counts.get(item.skipped, 0) + 1
