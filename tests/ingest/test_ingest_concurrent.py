"""Two `mmrag ingest` processes at once against one Milvus server count every item once (#20.2)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from retrieval.stores.milvus import MilvusStore
from tests.support.images import write_image_files
from tests.support.milvus_server import EmbeddedServer

ROOT = Path(__file__).resolve().parents[2]
IMAGES = 80
OVERLAP = 40  # the first manifest lists images 0..59, the second 20..79


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.mark.server
@pytest.mark.slow
def test_two_ingests_at_once_on_overlapping_files_count_each_item_once(
    tmp_path: Path, milvus_server: EmbeddedServer, tiny_model_files: tuple[Path, Path]
) -> None:
    files = write_image_files(tmp_path / "images", IMAGES, sizes=((32, 40),))
    half = (IMAGES + OVERLAP) // 2
    manifests = []
    for name, chosen in (("a", files[:half]), ("b", files[IMAGES - half :])):
        manifest = tmp_path / f"{name}.csv"
        manifest.write_text("path\n" + "".join(f"{p}\n" for p in chosen))
        manifests.append(manifest)
    config, checkpoint = tiny_model_files
    collection = f"concurrent_{time.monotonic_ns()}"
    flags = ["--uri", milvus_server.uri, "--collection", collection, "--model", str(config),
             "--pretrained", "", "--checkpoint", str(checkpoint), "--device", "cpu"]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "mmrag", "ingest", str(m), "--json", "--workers", "1",
             "--rejects", str(tmp_path / f"{m.stem}-rejects.jsonl"), *flags],
            cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        for m in manifests
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    try:
        for proc, (_, err) in zip(procs, outputs, strict=True):
            assert proc.returncode == 0, err.decode()
        a, b = (json.loads(out) for out, _ in outputs)
        assert a["ingested"] + a["duplicates"] == half and a["rejected"] == 0
        assert b["ingested"] + b["duplicates"] == half and b["rejected"] == 0
        assert a["ingested"] + b["ingested"] == IMAGES, (a, b)
        with MilvusStore(milvus_server.uri, collection) as store:
            assert store.count() == IMAGES
    finally:
        with MilvusStore(milvus_server.uri, collection) as store:
            store.drop()
