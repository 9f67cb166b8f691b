"""Distributed ingest on Ray (``mmrag ingest SOURCE --engine ray``; extra ``mmrag[ray]``).

The driver lists the source (folder, manifest or file, optionally one ``--shard``) into a Ray
Dataset. Three stages then stream over the cluster, as the local job's stages do in threads:

* prepare (an actor pool, CPU): expand videos into frames, look ids up in the store and in a
  run-wide ``_Seen`` actor (dedup), read or fetch bytes, hash, decode and preprocess;
* embed (a pool of model actors, one model each; one GPU each when the cluster has GPUs);
* write (an actor pool): batched upserts to the Milvus server, row by row when refused.

Every work comes back to the driver as one small row (id, source, outcome, reason, stage), where
the summary and the rejects file are built exactly as the local job builds them, so both give
the same ids, dedup, rejects report and summary. Workers write to Milvus themselves, so the
URI must be a Milvus server (a Lite file is owned by one process).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd

from ingest.expand import Expander
from ingest.fetch import Fetcher
from ingest.job import IngestOptions, IngestSummary, ProgressSink, Reject, without_skipped
from ingest.loading import Work, decode_work, read_work
from ingest.rejects import RejectsFile, clean_reason
from ingest.sources import SourceItem
from retrieval.config import Settings
from retrieval.embedders.tagged import EmbeddingModel
from retrieval.errors import ConfigError
from retrieval.image_rows import ensure_collection_for, fit_caption, image_record, write_rows
from retrieval.model_spec import spec_from_settings
from retrieval.source_names import display_text
from retrieval.stores import is_local_uri, open_store
from retrieval.types import Record

READY, DUPLICATE, REJECTED, INGESTED = "ready", "duplicate", "rejected", "ingested"
COLUMNS = ("id", "source", "caption", "metadata", "status", "reason", "stage", "first")
STAGES = ("prepare", "embed", "write")  # each adds a column naming the Ray node it ran on
INSTALL_HINT = "Ray is not installed: pip install 'mmrag[ray]' (Ray Data on every node)"
LOOPBACK = "127.0.0.1"
# Ray's "local Ray only" switch (named for the platforms where it is the default): node IP
# 127.0.0.1 instead of the address that routes to the internet.
LOCAL_ONLY_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


@dataclass(frozen=True)
class RayOptions:
    """Where Ray runs and how many actors each stage gets."""

    address: str | None = None  # None: a local Ray; "auto" or "ray://head:10001": a cluster
    model_actors: int | None = None  # default: one per GPU of the cluster, else 1
    prepare_actors: int = 1
    write_actors: int = 1
    num_cpus: int | None = None  # CPUs of a local Ray (default: all)


def import_ray(local: bool = False) -> ModuleType:
    """The ``ray`` module with Ray Data, or a ConfigError saying how to install it.

    ``local``: this process will start a local Ray, which must stay on loopback. Ray reads its
    local-only switch when imported: with it the node IP is 127.0.0.1 (not the machine's first
    network address) and every Ray server binds there.
    """
    if local and "ray" not in sys.modules:
        os.environ.setdefault(LOCAL_ONLY_ENV, "0")
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise ConfigError(f"{INSTALL_HINT} ({exc})") from exc
    return ray


def _item_row(item: SourceItem) -> dict[str, Any]:
    """A SourceItem as a plain Dataset row."""
    return {
        "source": item.source,
        "kind": item.kind,
        "caption": item.caption,
        "metadata": json.dumps(dict(item.metadata), ensure_ascii=False, default=str),
        "item_id": item.id or "",
        "key": item.key,
        "error": item.error or "",
        "item_stage": item.stage,
        "photo": item.photo,
    }


def _row_item(row: dict[str, Any]) -> SourceItem:
    """A Dataset row back as a SourceItem."""
    return SourceItem(
        source=str(row["source"]),
        kind=row["kind"],
        caption=str(row["caption"]),
        metadata=json.loads(row["metadata"]),
        id=str(row["item_id"]) or None,
        key=str(row["key"]),
        error=str(row["error"]) or None,
        stage=str(row["item_stage"]),
        photo=bool(row["photo"]),
    )


def _work_row(work: Work, first: bool) -> dict[str, Any]:
    """What the later stages need of a work (model input as float32 bytes when ready)."""
    status = READY if work.ready else DUPLICATE if work.duplicate else REJECTED
    prepared = b""
    if work.ready:
        prepared = np.ascontiguousarray(work.prepared, dtype=np.float32).tobytes()
    return {
        "id": work.id,
        "source": work.source,
        "caption": work.item.caption,
        "metadata": json.dumps(dict(work.fields), ensure_ascii=False, default=str),
        "status": status,
        "reason": (work.error or "") if status == REJECTED else "",
        "stage": work.stage if status == REJECTED else "",
        "first": first,
        "prepared": prepared,
    }


class _Seen:
    """A Ray actor holding the ids claimed in this run (first claim wins)."""

    def __init__(self) -> None:
        self.ids: set[str] = set()

    def claim(self, ids: list[str]) -> list[bool]:
        """Whether each id is new to this run (claiming it)."""
        out = []
        for item_id in ids:
            out.append(item_id not in self.ids)
            self.ids.add(item_id)
        return out


class _Prepare:
    """Actor: items -> works (frames), dedup, read, decode, preprocess."""

    def __init__(self, settings: Settings, options: IngestOptions, config: Any, seen: Any) -> None:
        from retrieval.embedders.preprocess import preprocess_image

        self.ray = import_ray()
        self.options = options
        self.store = open_store(settings.uri, settings.collection, token=settings.token)
        self.fetcher = Fetcher(options.fetch, connections=options.fetch_workers)
        self.pool = ThreadPoolExecutor(max(options.workers, options.fetch_workers))
        self.seen = seen
        self.prepare = lambda rgb: preprocess_image(rgb, config)
        self.min_side = config.draft_min_side
        self.expander = Expander(
            self.store.existing_ids, self.prepare, options.video_every_s, options.max_pixels
        )

    def _check(self, works: list[Work]) -> list[Work]:
        """Flag works whose id is stored already or was claimed earlier in this run."""
        pending = [i for i, w in enumerate(works) if not w.settled and not w.checked and w.id]
        lookup = [works[i].id for i in pending if works[i].prepared is None]
        stored = self.store.existing_ids(lookup) if lookup else set()
        fresh = [i for i in pending if works[i].id not in stored]
        claimed = self.ray.get(self.seen.claim.remote([works[i].id for i in fresh]))
        new = {i for i, ok in zip(fresh, claimed, strict=True) if ok}
        out = list(works)
        for i in pending:
            work = works[i]
            if i in new:
                out[i] = replace(work, checked=True)
            else:
                out[i] = replace(work, duplicate=True, checked=True, data=None, prepared=None)
        return out

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        """One batch of items in, one row per work out."""
        works: list[Work] = []
        first: list[bool] = []
        for row in batch.to_dict("records"):
            for n, work in enumerate(self.expander.expand(_row_item(row))):
                works.append(work)
                first.append(n == 0)
        works = self._check(works)
        works = list(self.pool.map(
            lambda w: read_work(w, self.fetcher, self.options.max_bytes), works))
        works = self._check(works)
        works = list(self.pool.map(
            lambda w: decode_work(w, self.prepare, self.options.max_pixels, self.min_side), works))
        rows = []
        for work, is_first in zip(works, first, strict=True):
            if not work.ready and not work.settled:
                work = work.reject("internal: item was neither decoded nor rejected", "decode")
            rows.append(_work_row(work, is_first))
        out = pd.DataFrame(rows, columns=[*COLUMNS, "prepared"])
        out["prepare_node"] = _node_id()
        return out


class _Embed:
    """Actor: one model; embeds the ready rows of a batch."""

    def __init__(self, settings: Settings, shape: tuple[int, ...]) -> None:
        from retrieval.embedders import create_embedder_from_settings

        self.embedder = create_embedder_from_settings(settings)
        self.shape = shape

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        """Replace model inputs by vectors (float32 bytes) for the ready rows."""
        ready = (batch["status"] == READY).to_numpy()
        vectors = [b""] * len(batch)
        if ready.any():
            inputs = [np.frombuffer(p, dtype=np.float32).reshape(self.shape)
                      for p in batch["prepared"][ready]]
            embedded = self.embedder.embed_prepared(inputs)
            for i, vector in zip(np.flatnonzero(ready), embedded, strict=True):
                vectors[int(i)] = np.asarray(vector, dtype=np.float32).tobytes()
        out = batch.drop(columns=["prepared"])
        out["vector"] = vectors
        out["embed_node"] = _node_id()
        return out


class _Write:
    """Actor: batched upserts to the Milvus server; refused rows become rejects."""

    def __init__(self, settings: Settings, dim: int, model_id: str) -> None:
        self.store = open_store(settings.uri, settings.collection, token=settings.token)
        self.model = EmbeddingModel(model_id=model_id, dim=dim)
        ensure_collection_for(self.store, self.model)  # pins the collection an alias names now

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        """Write the ready rows; report every row's outcome."""
        out = batch.drop(columns=["vector"])
        ready = [i for i, status in enumerate(batch["status"]) if status == READY]
        records = [self._record(batch.iloc[i]) for i in ready]
        refused = write_rows(self.store, records, new=False)
        status, reason, stage = list(out["status"]), list(out["reason"]), list(out["stage"])
        for n, i in enumerate(ready):
            if n in refused:
                status[i], reason[i], stage[i] = REJECTED, refused[n], "store"
            else:
                status[i] = INGESTED
        out["status"], out["reason"], out["stage"] = status, reason, stage
        out["write_node"] = _node_id()
        return out

    def _record(self, row: pd.Series) -> Record:
        """The stored row of a ready work."""
        return image_record(
            str(row["id"]),
            np.frombuffer(row["vector"], dtype=np.float32),
            self.model,
            source=str(row["source"]),
            caption=str(row["caption"]),
            metadata=json.loads(row["metadata"]),
        )


def _node_id() -> str:
    """The id of the Ray node this actor runs on."""
    import ray

    return str(ray.get_runtime_context().get_node_id())


def connect_ray(ray: ModuleType, options: RayOptions) -> bool:
    """Connect to (or start) Ray; True when this call started it (and must shut it down).

    A cluster on this machine's loopback (``127.0.0.1:PORT``, ``localhost:PORT``) is joined as
    127.0.0.1 too, so the driver's own servers stay on loopback beside the nodes.
    """
    if ray.is_initialized():
        return False
    if options.address:
        host = options.address.removeprefix("ray://").rsplit(":", 1)[0]
        loopback = {"_node_ip_address": LOOPBACK} if host in (LOOPBACK, "localhost") else {}
        ray.init(address=options.address, log_to_driver=False, **loopback)
    else:
        ray.init(  # "local": a Ray of its own, even beside a `ray start` cluster here
            address="local", num_cpus=options.num_cpus, include_dashboard=False,
            log_to_driver=False, _node_ip_address=LOOPBACK,
        )
    return True


def check_ray_settings(settings: Settings, local: bool = True) -> None:
    """Refuse a Milvus Lite URI, and a missing Ray, before anything starts."""
    if is_local_uri(settings.uri):
        raise ConfigError(
            "--engine ray writes from many processes: MMRAG_URI must be a Milvus server "
            f"(http://host:19530), not the Milvus Lite file {settings.uri}"
        )
    import_ray(local)


def run_ray_ingest(
    settings: Settings,
    items: Iterable[SourceItem],
    options: IngestOptions | None = None,
    ray_options: RayOptions | None = None,
    progress: ProgressSink | None = None,
    rejects: RejectsFile | None = None,
) -> IngestSummary:
    """Ingest items into the configured server collection with Ray; same result as run_ingest."""
    ropts = ray_options or RayOptions()
    check_ray_settings(settings, local=not ropts.address)
    ray = import_ray(local=not ropts.address)
    opts = options or IngestOptions()
    from retrieval.embedders import create_embedder_from_settings

    probe = create_embedder_from_settings(settings.model_copy(update={"device": "cpu"}))
    config = getattr(probe, "preprocess_config", None)
    if config is None:
        raise ConfigError(f"{probe.model_id}: --engine ray needs an open_clip model")
    dim, model_id, shape = probe.dim, probe.model_id, tuple(config.input_shape)
    del probe
    with open_store(settings.uri, settings.collection, token=settings.token) as store:
        ensure_collection_for(store, EmbeddingModel(model_id, dim, spec_from_settings(settings)))
    summary = IngestSummary(rejects_file=str(rejects.path) if rejects is not None else None)
    started = time.perf_counter()
    owned = connect_ray(ray, ropts)
    try:
        listed = without_skipped(items, summary)  # files of other types are counted, not read
        for row in _stream(ray, settings, listed, opts, ropts, config, shape, dim, model_id):
            _tally(summary, row, opts, progress, rejects)
    finally:
        if owned:
            ray.shutdown()
    with open_store(settings.uri, settings.collection, token=settings.token) as store:
        store.ensure_collection(dim, model_id)
        store.flush()
    summary.elapsed_s = time.perf_counter() - started
    return summary


def _stream(
    ray: ModuleType,
    settings: Settings,
    items: Iterable[SourceItem],
    opts: IngestOptions,
    ropts: RayOptions,
    config: Any,
    shape: tuple[int, ...],
    dim: int,
    model_id: str,
) -> Iterator[dict[str, Any]]:
    """Build the three-stage Dataset and yield one outcome row per work."""
    from ray.data import ActorPoolStrategy

    rows = [_item_row(item) for item in items]
    if not rows:
        return
    gpus = int(ray.cluster_resources().get("GPU", 0))
    actors = ropts.model_actors or max(1, gpus)
    embed_settings = settings.model_copy(update={"device": "cuda" if gpus else "cpu"})
    seen = ray.remote(num_cpus=0)(_Seen).remote()
    dataset = (
        ray.data.from_items(rows)
        .map_batches(
            _Prepare, batch_format="pandas", batch_size=opts.dedup_batch_size,
            fn_constructor_kwargs={"settings": settings, "options": opts, "config": config,
                                   "seen": seen},
            compute=ActorPoolStrategy(size=ropts.prepare_actors), num_cpus=0.5,
        )
        .map_batches(
            _Embed, batch_format="pandas", batch_size=opts.batch_size,
            fn_constructor_kwargs={"settings": embed_settings, "shape": shape},
            compute=ActorPoolStrategy(size=actors),
            num_gpus=1 if gpus else 0, num_cpus=1 if not gpus else 0.5,
        )
        .map_batches(
            _Write, batch_format="pandas", batch_size=opts.insert_batch_size,
            fn_constructor_kwargs={"settings": settings, "dim": dim, "model_id": model_id},
            compute=ActorPoolStrategy(size=ropts.write_actors), num_cpus=0.25,
        )
    )
    for batch in dataset.iter_batches(batch_format="pandas", batch_size=256):
        yield from batch.to_dict("records")


def _tally(
    summary: IngestSummary,
    row: dict[str, Any],
    opts: IngestOptions,
    progress: ProgressSink | None,
    rejects: RejectsFile | None,
) -> None:
    """Count one outcome as the local job does, and record rejects."""
    status = row["status"]
    for stage in STAGES:
        node = row.get(f"{stage}_node")
        if node:
            counts = summary.nodes.setdefault(stage, {})
            counts[str(node)] = counts.get(str(node), 0) + 1
    if status == INGESTED:
        summary.ingested += 1
        if fit_caption(str(row["caption"]))[1]:
            summary.captions_truncated += 1
            if len(summary.truncated) < opts.rejects_kept:
                summary.truncated.append(display_text(str(row["source"])))
    elif status == DUPLICATE:
        summary.duplicates += 1
    else:
        stage = str(row["stage"]) or "read"
        summary.rejected += 1
        summary.rejected_by_stage[stage] = summary.rejected_by_stage.get(stage, 0) + 1
        if len(summary.rejects) < opts.rejects_kept:
            source, reason = display_text(str(row["source"])), clean_reason(str(row["reason"]))
            summary.rejects.append(Reject(source, reason, stage))
        if rejects is not None:
            rejects.write(str(row["source"]), str(row["reason"]), stage)
    if progress is not None:
        if not row["first"]:
            progress.add_total(1)  # another frame of a video
        progress.advance(1)
