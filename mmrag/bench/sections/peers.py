"""Peers section (``mmrag bench --peers``): the same JPEG files and the same random ViT-B-32
weights through mmrag's ingest, towhee's runtime, clip-retrieval and the naive per-row loop.

The files are written once (``write_jpegs``: 640x480, varied) and the weights saved once as a
safetensors checkpoint (``checkpoint_for``); every tool runs as a child process of its own,
one after the other, and reports the images it wrote and its own run seconds with its model
loaded; the parent adds each command's whole wall time. A peer that cannot be installed or
run is skipped with its reason in the table, never an error of the bench.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mmrag.bench.models import cache_dir, checkpoint_for
from mmrag.bench.peers.base import Peer, PeerFailed, PeerResult, run_peer
from mmrag.bench.peers.clip_retrieval import PeerUnavailable, clip_retrieval_peer, ensure_venv
from mmrag.bench.peers.mmrag_peer import mmrag_peer
from mmrag.bench.peers.naive_child import naive_peer
from mmrag.bench.peers.towhee_child import towhee_peer
from mmrag.bench.report import Row
from mmrag.bench.sizes import Sizes
from mmrag.bench.workload import write_jpegs

TOOLS = ("mmrag", "towhee", "clip-retrieval", "naive")
TARGETS = {"towhee": ">= 2", "clip-retrieval": ">= 1.3"}  # mmrag / peer, issue #19
RUN_TIMEOUT_S = 1800.0


def peers_section(
    model: str, sizes: Sizes, work: Path, log: Callable[[str], None],
    tools: tuple[str, ...] = TOOLS,
) -> tuple[list[Row], dict[str, Any]]:
    """Rows of mmrag's images/s against each peer's, and every tool's raw result."""
    folder = work / f"peers-{sizes.peer_images}"
    if not folder.is_dir() or len(list(folder.glob("*.jpg"))) < sizes.peer_images:
        write_jpegs(folder, sizes.peer_images)
    checkpoint = checkpoint_for(model)
    env = settings_env(sizes)
    results: dict[str, PeerResult] = {}
    for tool in tools:
        result = run_tool(tool, model, checkpoint, folder, work, sizes, env, log)
        results[tool] = result
        log(f"peers {result.name}: " + (f"skipped: {result.skipped}" if result.skipped else
            f"{result.images} images in {result.run_s:.1f} s = {result.images_per_s:.1f} img/s "
            f"({result.wall_s:.1f} s for the whole command)"))
    if "mmrag" in tools and wants_fp32_run(sizes, results.get("mmrag")):
        fp32 = {**env, "MMRAG_PRECISION": "fp32"}
        results["mmrag-fp32"] = guarded("mmrag (fp32)", "rows flushed to Milvus Lite", lambda:
            mmrag_peer(folder, model, checkpoint, work / "peer-mmrag-fp32.db", fp32,
                       "mmrag (fp32)"))
    rows = peer_rows(model, sizes.peer_images, results)
    data = {"model": model, "checkpoint": str(checkpoint), "images": sizes.peer_images,
            "image_size": "640x480 JPEG", "tools": {k: r.as_dict() for k, r in results.items()}}
    return rows, data


def settings_env(sizes: Sizes) -> dict[str, str]:
    """The MMRAG_* settings every child runs with: the bench's precision and threads, CPU."""
    env = {"MMRAG_PRECISION": sizes.precision, "MMRAG_DEVICE": "cpu",
           "MMRAG_LOG_LEVEL": "warning"}
    if sizes.torch_threads:
        env["MMRAG_TORCH_THREADS"] = str(sizes.torch_threads)
    return env


def run_tool(
    tool: str, model: str, checkpoint: Path, folder: Path, work: Path, sizes: Sizes,
    env: dict[str, str], log: Callable[[str], None],
) -> PeerResult:
    """One tool's run (its child process), or its result marked skipped with the reason."""
    db = work / f"peer-{tool}.db"
    if tool == "mmrag":
        return guarded("mmrag", "rows flushed to Milvus Lite",
                       lambda: mmrag_peer(folder, model, checkpoint, db, env))
    if tool == "towhee":
        return guarded("towhee 1.1.3 runtime", "rows flushed to Milvus Lite",
                       lambda: towhee_peer(folder, model, checkpoint, db, env))
    if tool == "naive":
        return guarded("naive per-row loop", "rows flushed to Milvus Lite",
                       lambda: naive_peer(folder, model, checkpoint, db, env))
    if tool == "clip-retrieval":
        out = work / "peer-clip-retrieval-out"

        def build() -> Peer:
            python = ensure_venv(cache_dir(), log)
            return clip_retrieval_peer(python, folder, out, model, checkpoint, sizes.batch_size,
                                       ingest_workers(), env)

        return guarded("clip-retrieval 2.45.0 inference", "embeddings written to .npy files",
                       build)
    raise ValueError(f"unknown peer {tool!r} (one of {', '.join(TOOLS)})")


def guarded(name: str, counts: str, build: Callable[[], Peer]) -> PeerResult:
    """Build and run a peer; a peer that cannot be installed or run is a skipped result."""
    try:
        return run_peer(build(), RUN_TIMEOUT_S)
    except (PeerUnavailable, PeerFailed, OSError) as exc:
        return PeerResult(name, counts, skipped=str(exc))


def ingest_workers() -> int:
    """mmrag ingest's default decode threads (CPU cores, at most 4): clip-retrieval's
    DataLoader gets as many worker processes."""
    return max(1, min(4, os.cpu_count() or 1))


def wants_fp32_run(sizes: Sizes, mmrag: PeerResult | None) -> bool:
    """mmrag at fp32 too when it ran in bf16: clip-retrieval runs fp32 on CPUs."""
    return (sizes.precision == "auto" and mmrag is not None and not mmrag.skipped
            and mmrag.extra.get("precision", "bf16") != "fp32" and sizes.peer_fp32)


COMPARED = (  # (figure, against): the ratio is figure / against
    ("mmrag", "towhee"), ("mmrag", "clip-retrieval"), ("mmrag", "naive"),
    ("mmrag-fp32", "clip-retrieval"),
)


def peer_rows(model: str, images: int, results: dict[str, PeerResult]) -> list[Row]:
    """Every tool's own images/s (or why it was skipped), then mmrag against each peer."""
    rows = [skipped_row(r) if r.skipped else tool_row(model, images, r)
            for r in results.values()]
    for mine, theirs in COMPARED:
        a, b = results.get(mine), results.get(theirs)
        if a is None or b is None or a.skipped or b.skipped:
            continue
        rows.append(Row(
            "peers", f"{model}: {a.name} vs {b.name}, {images} JPEGs",
            a.images_per_s, "img/s", b.images_per_s, b.name,
            TARGETS.get(theirs, "") if mine == "mmrag" else "",
            f"whole commands {a.wall_images_per_s or 0:.1f} vs {b.wall_images_per_s or 0:.1f} "
            f"img/s; precision {a.extra.get('precision', '?')} vs "
            f"{b.extra.get('precision', '?')}",
        ))
    return rows


def tool_row(model: str, images: int, result: PeerResult) -> Row:
    """One tool's own images/s (no baseline)."""
    return Row("peers", f"{model}: {result.name}, {images} JPEGs -> {result.counts}",
               result.images_per_s, "img/s", note=(
                   f"{result.images} written in {result.run_s:.1f} s; whole command "
                   f"{result.wall_s:.1f} s ({result.wall_images_per_s or 0:.1f} img/s); "
                   f"precision {result.extra.get('precision', '?')}"))


def skipped_row(result: PeerResult) -> Row:
    """A peer that did not run: no figure, the reason in the note."""
    return Row("peers", f"{result.name}: skipped", None, "", note=result.skipped)
