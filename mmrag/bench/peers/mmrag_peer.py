"""mmrag's own run: ``mmrag ingest FOLDER --checkpoint ...`` into Milvus Lite, as a user runs it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from mmrag.bench.peers.base import Counted, Peer, PeerFailed, child_env
from retrieval.embedders.precision import resolve_precision


def mmrag_peer(
    folder: Path, model: str, checkpoint: Path, db: Path, settings_env: dict[str, str],
    name: str = "mmrag",
) -> Peer:
    """``python -m mmrag ingest`` of the folder with the checkpoint, summary as JSON."""
    command = [
        sys.executable, "-m", "mmrag", "ingest", str(folder), "--uri", str(db),
        "--collection", "peers", "--model", model, "--checkpoint", str(checkpoint),
        "--device", "cpu", "--json", "--quiet",
    ]
    precision = resolve_precision(settings_env.get("MMRAG_PRECISION", "auto"), "cpu")
    return Peer(name, command, child_env(settings_env),
                lambda out: parse_ingest_summary(out, precision),
                "rows flushed to Milvus Lite (ingest's own elapsed_s: model loaded)")


def parse_ingest_summary(stdout: str, precision: str = "?") -> Counted:
    """The ``--json`` summary line of ``mmrag ingest``: ingested rows and elapsed seconds."""
    for line in reversed(stdout.splitlines()):
        if line.startswith("{"):
            data = json.loads(line)
            return Counted(int(data["ingested"]), float(data["elapsed_s"]),
                           {"rejected": data.get("rejected", 0), "precision": precision})
    raise PeerFailed("mmrag ingest printed no JSON summary")
