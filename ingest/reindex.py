"""Re-embed a collection with another model into a new collection, then switch the alias to it.

Every stored row is embedded again from its stored source (image file or URL, video frame at
its timestamp, or the caption of a text row) and written, with the same id and fields, to a
new collection that records the new model's spec. Rows already in the new collection are
skipped, so an interrupted reindex resumes. A second pass picks up rows written meanwhile.
Then the configured name moves: a server alias is altered atomically; Milvus Lite (which has no
aliases) gets a pointer file next to the ``.db`` (see ``retrieval.stores.lite_aliases``).
The old collection is kept (searches already embedded with the old model still finish there)
unless ``drop_old`` is set, in which case it is dropped after ``grace_s`` seconds.

``add_text_index`` moves a collection made without the BM25 text index (before Milvus 2.5,
or before mmrag had it) the same way, copying every row with its stored vector instead of
embedding it again (``retrieval.migrate.copy_collection``, verified).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import cv2
import numpy as np

from ingest.fetch import Fetcher, FetchOptions
from ingest.loading import Work, decode_work, read_work
from ingest.rejects import RejectsFile
from ingest.sources import SourceItem
from retrieval.config import Settings
from retrieval.embedders.base import Embedder
from retrieval.errors import ConfigError, StoreError, TextIndexMissingError
from retrieval.migrate import copy_collection
from retrieval.model_spec import spec_from_settings
from retrieval.stores import open_store
from retrieval.stores.base import VectorStore
from retrieval.types import Modality, Record

log = logging.getLogger(__name__)

_VERSION = re.compile(r"_v(\d+)\Z")
_URL = re.compile(r"https?://", re.IGNORECASE)

Progress = Callable[[int], None]


@dataclass(frozen=True)
class ReindexOptions:
    """Target name, batch sizes, threads, caps, and what to do at the end."""

    target: str | None = None
    batch_size: int = 256
    workers: int = 4
    max_pixels: int = 50_000_000
    max_bytes: int = 50 * 1024 * 1024
    allow_missing: bool = False
    drop_old: bool = False
    grace_s: float = 10.0
    force: bool = False
    settle_s: float = 5.0  # after adopting: running APIs re-resolve the name every 2 s


@dataclass
class ReindexSummary:
    """What a reindex did."""

    name: str
    old_collection: str
    new_collection: str
    old_model: str
    new_model: str
    dim: int
    total: int = 0
    embedded: int = 0
    skipped: int = 0
    rejected: int = 0
    switched: bool = False
    adopted: bool = False
    dropped_old: bool = False
    elapsed_s: float = 0.0
    rejects: list[tuple[str, str]] = field(default_factory=list)
    copied: int = 0  # rows copied with their stored vectors (add_text_index)
    text_columns: tuple[str, ...] | None = None  # the new text index's columns (add_text_index)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "name": self.name,
            "old_collection": self.old_collection,
            "new_collection": self.new_collection,
            "old_model": self.old_model,
            "new_model": self.new_model,
            "dim": self.dim,
            "total": self.total,
            "embedded": self.embedded,
            "skipped": self.skipped,
            "rejected": self.rejected,
            "switched": self.switched,
            "adopted": self.adopted,
            "dropped_old": self.dropped_old,
            "elapsed_s": round(self.elapsed_s, 3),
            "copied": self.copied,
            "text_columns": None if self.text_columns is None else list(self.text_columns),
        }


def next_version(name: str, existing: Sequence[str]) -> str:
    """``<name>_v<N>``: one above the highest version of ``name`` present (at least 2)."""
    versions = [1]
    for other in existing:
        if other.startswith(name + "_v"):
            match = _VERSION.search(other[len(name) :])
            if match and other == f"{name}_v{match.group(1)}":
                versions.append(int(match.group(1)))
    return f"{name}_v{max(versions) + 1}"


def _frame_rgb(video: str, frame: int | None, ts: float | None) -> np.ndarray:
    """The RGB pixels of one video frame (by index when known, else by timestamp)."""
    cap = cv2.VideoCapture(video)
    try:
        if not cap.isOpened():
            raise OSError(f"cannot open video {video}")
        if frame is not None:
            cap.set(cv2.CAP_PROP_POS_FRAMES, float(frame))
        elif ts is not None:
            cap.set(cv2.CAP_PROP_POS_MSEC, float(ts) * 1000.0)
        ok, bgr = cap.read()
    finally:
        cap.release()
    if not ok or bgr is None or bgr.size == 0:
        raise OSError(f"cannot decode frame {frame} (t={ts}) of {video}")
    return np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


class _Embedding:
    """Turns stored records into new-model inputs (threads), then vectors (one model call)."""

    def __init__(self, embedder: Embedder, options: ReindexOptions, fetcher: Fetcher) -> None:
        self.embedder = embedder
        self.options = options
        self.fetcher = fetcher

    def prepare(self, record: Record) -> tuple[Any, str | None]:
        """(model input, None) or (None, reason) for one stored record."""
        if record.modality is Modality.TEXT:
            return None, None if record.caption else "text row without a caption"
        meta = record.metadata
        video = meta.get("video")
        if isinstance(video, str) and video:
            frame, ts = meta.get("frame"), meta.get("video_ts")
            try:
                rgb = _frame_rgb(
                    video,
                    int(frame) if isinstance(frame, int | float) else None,
                    float(ts) if isinstance(ts, int | float) else None,
                )
            except OSError as exc:
                return None, str(exc)
            return self.embedder.prepare_image(rgb), None
        item = SourceItem(source=record.source, kind="url" if _URL.match(record.source) else "file")
        work = Work(item=item, source=record.source, id=record.id)
        work = decode_work(
            read_work(work, self.fetcher, self.options.max_bytes),
            self.embedder.prepare_image,
            self.options.max_pixels,
            self.embedder.decode_min_side,
        )
        if work.error is not None:
            return None, f"{work.stage}: {work.error}"
        return work.prepared, None

    def vectors(self, records: Sequence[Record], pool: ThreadPoolExecutor) -> list[Any]:
        """A new vector per record, or the reject reason (a str) when its source is gone."""
        prepared = list(pool.map(self.prepare, records))
        out: list[Any] = [reason for _, reason in prepared]
        images = [i for i, (p, _) in enumerate(prepared) if p is not None]
        texts = [i for i, r in enumerate(records) if r.modality is Modality.TEXT and r.caption]
        if images:
            embedded = self.embedder.embed_prepared([prepared[i][0] for i in images])
            for i, vector in zip(images, embedded, strict=True):
                out[i] = vector
        if texts:
            embedded = self.embedder.embed_texts([records[i].caption for i in texts])
            for i, vector in zip(texts, embedded, strict=True):
                out[i] = vector
        return out


def _pick_target(settings: Settings, name: str, current: str, model_id: str) -> str:
    """An unfinished earlier build for this model (resume), else the next version's name."""
    with open_store(settings.uri, name, token=settings.token) as live:
        existing = live.list_collections()
    latest = next_version(name, existing)
    previous = f"{name}_v{int(latest.rsplit('_v', 1)[1]) - 1}"
    if previous in existing and previous != current:
        with open_store(settings.uri, previous, token=settings.token) as store:
            if store.describe_target().model_id == model_id:
                return previous
    return latest


def _adopt(live: VectorStore, name: str) -> str:
    """Server: rename the real collection ``name`` to ``<name>_v1`` and alias ``name`` to it."""
    old = f"{name}_v1"
    if old in live.list_collections():
        raise ConfigError(f"cannot adopt {name!r}: a collection {old!r} already exists")
    live.rename(old)
    live.set_alias(name)
    log.warning("collection %r renamed to %r and aliased as %r", name, old, name)
    return old


def reindex(
    settings: Settings,
    embedder: Embedder,
    options: ReindexOptions | None = None,
    rejects: RejectsFile | None = None,
    progress: Progress | None = None,
) -> ReindexSummary:
    """Rebuild ``settings.collection`` with ``embedder`` (the new model, named by settings)."""
    opts = options or ReindexOptions()
    started = time.perf_counter()
    name = settings.collection
    live = open_store(settings.uri, name, token=settings.token)
    try:
        if not live.exists():
            raise ConfigError(f"collection {name!r} does not exist at {settings.uri}")
        current = live.describe_target()
        if current.model_id == embedder.model_id and not opts.force:
            raise ConfigError(
                f"{name!r} is already built with {embedder.model_id!r}; pass --force to rebuild"
            )
        adopted = False
        if not live.capabilities.alias_shadows_collection and live.describe_alias(name) is None:
            _adopt(live, name)  # a real collection: make the name an alias first
            adopted = True
            current = live.describe_target()
            time.sleep(opts.settle_s)  # APIs move to the renamed collection before the switch
        target = opts.target or _pick_target(settings, name, current.collection, embedder.model_id)
        if target in (name, current.collection):
            raise ConfigError(f"the new collection must differ from {current.collection!r}")
        summary = ReindexSummary(
            name=name, old_collection=current.collection, new_collection=target,
            old_model=current.model_id, new_model=embedder.model_id, dim=embedder.dim,
            adopted=adopted,
        )
        _rebuild(settings, embedder, opts, summary, rejects, progress)
        if summary.rejected and not opts.allow_missing:
            summary.elapsed_s = time.perf_counter() - started
            return summary
        with open_store(settings.uri, target, token=settings.token) as new:
            new.set_alias(name)
        summary.switched = True
        if opts.drop_old:
            time.sleep(opts.grace_s)  # queries embedded with the old model finish there
            with open_store(settings.uri, current.collection, token=settings.token) as old:
                if not old.list_aliases():
                    old.drop()
                    summary.dropped_old = True
    finally:
        live.close()
    summary.elapsed_s = time.perf_counter() - started
    return summary


def _rebuild(
    settings: Settings,
    embedder: Embedder,
    opts: ReindexOptions,
    summary: ReindexSummary,
    rejects: RejectsFile | None,
    progress: Progress | None,
) -> None:
    """Fill the new collection from the old one: a full pass, then a catch-up pass."""
    new = open_store(settings.uri, summary.new_collection, token=settings.token,
                     index_type=settings.index_type)
    old = open_store(settings.uri, summary.old_collection, token=settings.token)
    fetcher = Fetcher(FetchOptions(max_bytes=opts.max_bytes), connections=opts.workers)
    embedding = _Embedding(embedder, opts, fetcher)
    refused: set[str] = set()
    try:
        new.ensure_collection(embedder.dim, embedder.model_id, spec=spec_from_settings(settings))
        with ThreadPoolExecutor(opts.workers, thread_name_prefix="mmrag-reindex") as pool:
            for catch_up in (False, True):
                for batch in old.iterate(batch_size=opts.batch_size, with_vectors=False):
                    if not catch_up:
                        summary.total += len(batch)
                    have = new.existing_ids([r.id for r in batch])
                    todo = [r for r in batch if r.id not in have and r.id not in refused]
                    if not catch_up:
                        summary.skipped += len(batch) - len(todo)
                    else:
                        summary.total += len(todo)  # written to the old one meanwhile
                    if todo:
                        _write(new, embedding, todo, pool, summary, refused, rejects)
                    if progress is not None and not catch_up:
                        progress(len(batch))
        new.flush()
        if not new.wait_until_indexed(timeout=300):
            raise StoreError(f"{summary.new_collection!r} was not indexed within 300 s")
    finally:
        fetcher.close()
        old.close()
        new.close()


def _write(
    new: VectorStore,
    embedding: _Embedding,
    todo: list[Record],
    pool: ThreadPoolExecutor,
    summary: ReindexSummary,
    refused: set[str],
    rejects: RejectsFile | None,
) -> None:
    """Embed one batch again and upsert it; rows whose source is gone are rejected."""
    vectors = embedding.vectors(todo, pool)
    rows = []
    for record, vector in zip(todo, vectors, strict=True):
        if isinstance(vector, str) or vector is None:
            reason = vector or "nothing to embed"
            refused.add(record.id)
            summary.rejected += 1
            if len(summary.rejects) < 1000:
                summary.rejects.append((record.source, reason))
            if rejects is not None:
                rejects.write(record.source, reason, "reindex")
            continue
        rows.append(replace(record, vector=vector, model_id=embedding.embedder.model_id))
    summary.embedded += new.upsert(rows) if rows else 0


def add_text_index(
    settings: Settings,
    columns: Sequence[str],
    options: ReindexOptions | None = None,
    progress: Progress | None = None,
) -> ReindexSummary:
    """Copy ``settings.collection`` into a new collection with the BM25 text index over the
    caption, file name and ``columns``, stored vectors and all, then move the name to it."""
    opts = options or ReindexOptions()
    started = time.perf_counter()
    name = settings.collection
    with open_store(settings.uri, name, token=settings.token) as live:
        if not live.exists():
            raise ConfigError(f"collection {name!r} does not exist at {settings.uri}")
        capabilities = live.capabilities
        if not capabilities.full_text:
            raise TextIndexMissingError(capabilities.full_text_missing)
        wanted = tuple(dict.fromkeys(c.strip() for c in columns))
        if live.has_text_index() and live.text_columns() == wanted and not opts.force:
            raise ConfigError(
                f"{name!r} already has a text index over caption, file name"
                + (f" and {', '.join(wanted)}" if wanted else "")
                + "; pass --force to copy it again, or name other --text-columns"
            )
        current = live.describe_target()
        adopted = False
        if not capabilities.alias_shadows_collection and live.describe_alias(name) is None:
            _adopt(live, name)  # a real collection: make the name an alias first
            adopted = True
            current = live.describe_target()
            time.sleep(opts.settle_s)
    target = opts.target or _pick_target(settings, name, current.collection, current.model_id)
    if target in (name, current.collection):
        raise ConfigError(f"the new collection must differ from {current.collection!r}")
    summary = ReindexSummary(
        name=name, old_collection=current.collection, new_collection=target,
        old_model=current.model_id, new_model=current.model_id, dim=current.dim,
        adopted=adopted, text_columns=wanted,
    )
    with (
        open_store(settings.uri, target, token=settings.token,
                   index_type=settings.index_type) as new,
        open_store(settings.uri, current.collection, token=settings.token) as old,
    ):
        new.ensure_collection(
            current.dim, current.model_id, spec=current.spec, text_columns=wanted
        )
        if not new.has_text_index() or new.text_columns() != wanted:
            raise ConfigError(
                f"collection {target!r} exists without this text index; pass --target with "
                "a new name"
            )
        report = copy_collection(old, new, batch_size=opts.batch_size, progress=progress)
        if not new.wait_until_indexed(timeout=300):
            raise StoreError(f"{target!r} was not indexed within 300 s")
    if not report.verified:
        raise StoreError(
            f"the copy in {target!r} does not match {current.collection!r} "
            f"({len(report.missing)} missing, {len(report.mismatched)} differing rows); "
            f"{name!r} still reads {current.collection!r}. Rerun to resume the copy."
        )
    summary.total, summary.copied, summary.skipped = (
        report.source_count, report.copied, report.skipped
    )
    with open_store(settings.uri, target, token=settings.token) as new:
        new.set_alias(name)
    summary.switched = True
    if opts.drop_old:
        time.sleep(opts.grace_s)
        with open_store(settings.uri, current.collection, token=settings.token) as old:
            if not old.list_aliases():
                old.drop()
                summary.dropped_old = True
    summary.elapsed_s = time.perf_counter() - started
    return summary
