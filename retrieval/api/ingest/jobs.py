"""The server's ingest jobs: the CLI's ingest job run on a worker thread, one per collection.

``POST /ingest`` hands an ``IngestRequest`` to ``IngestJobs.submit``: the job runs at once, or
waits while another job writes to the same collection (at most ``MMRAG_INGEST_QUEUE`` jobs wait;
beyond that a 429). A running job is ``ingest.job.run_ingest`` (dedup by content hash, rejects,
a rerun finishing what a crash or a cancel left) with the server's query model and the
configured collection's store, its model calls and writes taking turns with searches in the CPU
lane (``bridge.LaneTurns``), URLs fetched through the SSRF guard. Its summary is read live for
``GET /ingest/{id}``; every change wakes the event streams following it. A cancel stops it
between batches: what was written stays.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import secrets
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ingest.job import IngestOptions, IngestSummary, JobHooks, run_ingest
from ingest.sources import Source, SourceItem, open_source
from retrieval.api.errors import ApiError
from retrieval.api.ingest.bridge import GuardedFetcher, LaneTurns, LoopBridge
from retrieval.api.ingest.roots import checked_items
from retrieval.api.ingest.uploads import UploadBatch
from retrieval.api.lane import CpuLane
from retrieval.api.query_models import QueryModels
from retrieval.api.store_gateway import StoreGateway
from retrieval.components import Components
from retrieval.config import Settings
from retrieval.errors import MmragError
from retrieval.stores import is_local_uri, open_store
from retrieval.stores.base import VectorStore
from retrieval.stores.milvus_rows import lite_path

log = logging.getLogger(__name__)

FINISHED_KEPT = 100  # finished jobs listed by GET /ingest (older ones are forgotten)
REJECTS_KEPT = 1000
FINAL_STATES = frozenset({"done", "failed", "cancelled"})


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


@dataclass
class IngestRequest:
    """What one job ingests: uploaded files, URLs and checked server paths, into a collection."""

    collection: str
    uploads: UploadBatch | None = None
    urls: list[str] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)  # resolved, under the allowed roots

    def sources(self) -> list[Source]:
        """The server paths opened as the CLI opens them (manifests are read here)."""
        return [open_source(path) for path in self.paths]

    def items(self, sources: list[Source], roots: list[Path]) -> Iterator[SourceItem]:
        """Uploads, then URLs, then every file of the server paths (each checked again)."""
        if self.uploads is not None:
            yield from self.uploads.items()
        for url in self.urls:
            yield SourceItem(source=url, kind="url", key=url)
        for source in sources:
            yield from checked_items(source, roots)

    def planned(self) -> int:
        """Items known before the server paths are walked."""
        uploads = len(self.uploads.spool.files) if self.uploads is not None else 0
        return uploads + len(self.urls)


class IngestJob:
    """One job: its request, state, live summary and progress (read by any thread)."""

    def __init__(self, job_id: str, request: IngestRequest) -> None:
        self.id = job_id
        self.request = request
        self.state = "queued"
        self.summary = IngestSummary()
        self.done = 0
        self.total: int | None = request.planned() if not request.paths else None
        self.error: str | None = None
        self.created_at = _now()
        self.started_at: str | None = None
        self.finished_at: str | None = None
        self.version = 0  # bumped on every change; event streams wait for it to move
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.on_change: Any = None  # set by IngestJobs: wakes the event streams

    @property
    def finished(self) -> bool:
        """Done, failed or cancelled."""
        return self.state in FINAL_STATES

    @property
    def cancel_requested(self) -> bool:
        """Whether a cancel was asked for."""
        return self._stop.is_set()

    def stop_requested(self) -> bool:
        """The job's stop hook."""
        return self._stop.is_set()

    def request_cancel(self) -> None:
        """Ask the job to stop between batches."""
        self._stop.set()
        self.changed()

    # ProgressSink --------------------------------------------------------------------------
    def advance(self, n: int) -> None:
        """n more items are finished."""
        with self._lock:
            self.done += n
        self.changed()

    def add_total(self, n: int) -> None:
        """n more items are expected (video frames)."""
        with self._lock:
            if self.total is not None:
                self.total += n
        self.changed()

    def changed(self) -> None:
        """Note a change and wake whoever follows the job."""
        with self._lock:
            self.version += 1
        if self.on_change is not None:
            self.on_change()

    def set_state(self, state: str, error: str | None = None) -> None:
        """Move to a state (with the failure's message)."""
        self.state = state
        self.error = error
        if state == "running":
            self.started_at = _now()
        elif state in FINAL_STATES:
            self.finished_at = _now()
        self.changed()

    def snapshot(self) -> dict[str, Any]:
        """The job as ``GET /ingest/{id}`` answers it."""
        summary = self.summary
        label = self.request.uploads.label if self.request.uploads is not None else str
        request = self.request
        return {
            "id": self.id,
            "collection": request.collection,
            "state": self.state,
            "cancel_requested": self.cancel_requested,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "sources": {
                "uploads": len(request.uploads.spool.files) if request.uploads else 0,
                "urls": len(request.urls),
                "paths": [str(p) for p in request.paths],
            },
            "progress": {"done": self.done, "total": self.total},
            "counts": {
                "ingested": summary.ingested,
                "duplicates": summary.duplicates,
                "rejected": summary.rejected,
                "skipped": summary.skipped,
            },
            "skipped_by_type": dict(sorted(summary.skipped_by_type.items())),
            "rejects": [
                {"source": label(r.source), "reason": r.reason, "stage": r.stage}
                for r in list(summary.rejects)
            ],
            "error": self.error,
            "message": self.message(),
        }

    def message(self) -> str:
        """One sentence saying where the job stands."""
        s = self.summary
        counts = (f"{s.ingested} ingested, {s.duplicates} already stored, {s.rejected} "
                  f"rejected" + (f", {s.skipped_text()}" if s.skipped else ""))
        if self.state == "queued":
            return "Waiting for the job before it on this collection to finish."
        if self.state == "running":
            return f"Running: {counts} so far."
        if self.state == "failed":
            return f"Failed: {self.error} ({counts} before it stopped; send it again to finish)."
        if self.state == "cancelled":
            return (f"Cancelled: {counts}; what was written stays, and sending the same "
                    "images again adds only the rest.")
        if not s.scanned and not s.skipped:
            return "Nothing to ingest: the request named no image."
        return f"Done: {counts}."


class IngestJobs:
    """Runs ingest jobs on worker threads: one at a time per collection, a capped queue."""

    def __init__(
        self,
        settings: Settings,
        stores: StoreGateway,
        models: QueryModels,
        lane: CpuLane,
        writes_share_lane: bool,
    ) -> None:
        self.settings = settings
        self.stores = stores
        self.models = models
        self.lane = lane
        self.writes_share_lane = writes_share_lane
        self._jobs: dict[str, IngestJob] = {}
        self._queued: dict[str, deque[IngestJob]] = {}
        self._running: dict[str, IngestJob] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._signals: dict[str, asyncio.Event] = {}

    def start(self) -> None:
        """Bind to the server's event loop (call from it)."""
        self._loop = asyncio.get_running_loop()

    # ----- requests ---------------------------------------------------------------------------

    def submit(self, request: IngestRequest) -> IngestJob:
        """Start a job, or queue it behind the collection's running job (429 when full)."""
        if self._loop is None:
            raise ApiError(503, "the server is still starting; send the request again")
        with self._lock:
            waiting = sum(len(q) for q in self._queued.values())
            if request.collection in self._running and waiting >= self.settings.ingest_queue:
                raise ApiError(
                    429, f"{waiting} ingest jobs are already waiting (MMRAG_INGEST_QUEUE); send "
                    "this one again once one of them has finished",
                    type="too_many_jobs", headers={"Retry-After": "10"},
                )
            job = IngestJob(secrets.token_hex(8), request)
            job.on_change = lambda: self._notify(job.id)
            self._jobs[job.id] = job
            self._forget_old()
            if request.collection in self._running:
                self._queued.setdefault(request.collection, deque()).append(job)
            else:
                self._launch(job)
        return job

    def get(self, job_id: str) -> IngestJob:
        """A job by id (404 when unknown)."""
        job = self._jobs.get(job_id)
        if job is None:
            raise ApiError(404, f"no ingest job {job_id!r} (finished jobs are kept for a while; "
                           "GET /ingest lists them)", type="job_not_found")
        return job

    def recent(self) -> list[IngestJob]:
        """Every known job, newest first."""
        return list(reversed(self._jobs.values()))

    def cancel(self, job_id: str) -> IngestJob:
        """Cancel a queued job at once, a running one between batches (409 when finished)."""
        job = self.get(job_id)
        with self._lock:
            if job.finished:
                raise ApiError(409, f"ingest job {job_id!r} has already {job.state}; nothing to "
                               "cancel", type="conflict")
            queue = self._queued.get(job.request.collection)
            if queue is not None and job in queue:
                queue.remove(job)
                job.request_cancel()
                self._discard(job)
                job.set_state("cancelled")
                return job
        job.request_cancel()
        return job

    async def wait_change(self, job: IngestJob, seen: int, timeout_s: float) -> None:
        """Return once the job changed after version ``seen`` (or after ``timeout_s``)."""
        event = self._signals.setdefault(job.id, asyncio.Event())
        if job.version != seen:
            return
        try:
            await asyncio.wait_for(event.wait(), timeout_s)
        except asyncio.TimeoutError:
            return

    async def close(self) -> None:
        """Cancel every job and wait for the running ones to stop."""
        with self._lock:
            for queue in self._queued.values():
                for job in queue:
                    job.request_cancel()
                    self._discard(job)
                    job.set_state("cancelled")
            self._queued.clear()
            running = list(self._running.values())
            threads = list(self._threads.values())
        for job in running:
            job.request_cancel()
        for thread in threads:
            await asyncio.to_thread(thread.join, 60.0)

    # ----- running ----------------------------------------------------------------------------

    def _notify(self, job_id: str) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake, job_id)

    def _wake(self, job_id: str) -> None:
        event = self._signals.pop(job_id, None)
        if event is not None:
            event.set()  # its waiters return; the next ones wait on a new event

    def _launch(self, job: IngestJob) -> None:
        """Start a job's thread (the lock is held)."""
        self._running[job.request.collection] = job
        thread = threading.Thread(target=self._run, args=(job,), name=f"mmrag-ingest-{job.id}",
                                  daemon=True)
        self._threads[job.id] = thread
        thread.start()

    def _run(self, job: IngestJob) -> None:
        """The job's thread: run it, record how it ended, start the next one queued."""
        job.set_state("running")
        try:
            self._ingest(job)
            job.set_state("cancelled" if job.cancel_requested else "done")
        except ApiError as exc:
            job.set_state("failed", exc.message)
        except MmragError as exc:
            job.set_state("failed", str(exc))
        except Exception as exc:  # the job's top level: a bug fails the job, never a silent hang
            log.exception("ingest job %s failed", job.id)
            job.set_state("failed", f"internal error ({type(exc).__name__}); see the server log")
        finally:
            self._discard(job)
            with self._lock:
                collection = job.request.collection
                self._running.pop(collection, None)
                self._threads.pop(job.id, None)
                queue = self._queued.get(collection)
                if queue:
                    self._launch(queue.popleft())

    def _ingest(self, job: IngestJob) -> None:
        """Run the CLI's ingest job with the server's model and store."""
        assert self._loop is not None
        bridge = LoopBridge(self._loop)
        settings = self.settings.model_copy(update={"collection": job.request.collection})
        embedder = bridge.run(self.models.embedder())  # the query model (503 while loading)
        sources = job.request.sources()
        if job.request.paths:
            job.total = job.request.planned() + sum(source.count() for source in sources)
            job.changed()
        store, owned = self._job_store(settings)
        components = Components(settings=settings, store=store, _embedder=embedder)
        hooks = JobHooks(
            stop=job.stop_requested,
            turn=LaneTurns(bridge, self.lane, self.writes_share_lane),
            fetcher=GuardedFetcher(bridge, settings.max_upload_bytes,
                                   settings.allow_private_urls),
        )
        options = IngestOptions(
            batch_size=min(settings.batch_size, 16),  # short model turns: searches wait less
            workers=1,
            fetch_workers=4,
            insert_batch_size=64,
            max_pixels=settings.max_image_pixels,
            rejects_kept=REJECTS_KEPT,
        )
        try:
            items = job.request.items(sources, list(self.settings.ingest_roots))
            run_ingest(components, items, options, progress=job, hooks=hooks,
                       summary=job.summary)
        finally:
            if owned:
                store.close()

    def _job_store(self, settings: Settings) -> tuple[VectorStore, bool]:
        """(store, whether the job owns it): the gateway's store of the configured collection,
        else one of the job's own. A Lite file that does not exist yet is created first."""
        uri = settings.uri
        creator = None
        if is_local_uri(uri) and not lite_path(uri).is_file():
            creator = open_store(uri, settings.collection, token=settings.token,
                                 index_type=settings.index_type, create=True)
        try:
            if settings.collection == self.settings.collection:
                store = self.stores.default
                store.exists()  # a server started before the file existed opens it now
                return store, False
            return open_store(uri, settings.collection, token=settings.token,
                              index_type=settings.index_type, create=True), True
        finally:
            if creator is not None:
                creator.close()

    def _discard(self, job: IngestJob) -> None:
        """Remove the job's spool and the kept files of its rejected uploads."""
        uploads = job.request.uploads
        if uploads is not None:
            uploads.discard({r.source for r in job.summary.rejects})

    def _forget_old(self) -> None:
        """Drop the oldest finished jobs beyond FINISHED_KEPT (the lock is held)."""
        finished = [j for j in self._jobs.values() if j.finished]
        for job in finished[: max(0, len(finished) - FINISHED_KEPT)]:
            del self._jobs[job.id]
