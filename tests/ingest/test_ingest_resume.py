"""Resumability: ``kill -9`` a running ``mmrag ingest``, run it again, and it finishes the work."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest

from retrieval.config import Settings
from retrieval.stores.milvus import MilvusStore
from tests.ingest.helpers import stored_records, wait_for
from tests.support.images import write_image_files

ROOT = Path(__file__).resolve().parents[2]
IMAGES = 400
BAD_AT = 280  # a bad file sorted after img_0280.jpg: its reject line means the job is ~70% in


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _kill_hard(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the job and wait until its Milvus Lite server has let go of the file."""
    children = psutil.Process(proc.pid).children(recursive=True)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, f"Milvus Lite server still running after its owner died: {alive}"


def _rows(settings: Settings) -> list[str]:
    with MilvusStore(settings.uri, settings.collection) as store:
        if not store.exists():
            return []
        return [r.source for r in stored_records(store)]


@pytest.mark.slow
def test_kill_dash_nine_then_rerun_stores_every_valid_image_exactly_once(
    tmp_path: Path, settings: Settings, cli_flags: list[str]
) -> None:
    folder = tmp_path / "images"
    files = write_image_files(folder, IMAGES, sizes=((48, 64), (64, 48)))
    bad = folder / f"img_{BAD_AT:04d}_bad.jpg"
    bad.write_text("not an image")
    rejects = tmp_path / "rejects.jsonl"
    command = [
        sys.executable, "-m", "mmrag", "ingest", str(folder), *cli_flags,
        "--batch-size", "8", "--insert-batch-size", "16", "--workers", "1",
        "--rejects", str(rejects),
    ]
    proc = subprocess.Popen(
        [*command, "--quiet"], cwd=tmp_path, env=_env(),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        reached = wait_for(lambda: rejects.exists() and rejects.stat().st_size > 0, 120)
        running = proc.poll() is None
        assert reached, proc.stderr.read().decode() if proc.stderr else ""
        assert running, "the job finished before it could be killed"
    finally:
        if proc.poll() is None:
            _kill_hard(proc)
        if proc.stderr:
            proc.stderr.close()

    survived = _rows(settings)  # rows upserted (never flushed) before the kill
    assert 0 < len(survived) < IMAGES
    assert len(survived) == len(set(survived))

    done = subprocess.run(
        [*command, "--json"], cwd=tmp_path, env=_env(), capture_output=True, timeout=300
    )
    assert done.returncode == 0, done.stderr.decode()
    summary = json.loads(done.stdout)
    # what was stored before the kill is not embedded again; the rest is
    assert summary["duplicates"] == len(survived)
    assert summary["ingested"] == IMAGES - len(survived)
    assert summary["rejected"] == 1

    final = _rows(settings)
    assert sorted(final) == sorted(str(f.resolve()) for f in files)
    lines = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert [line["source"] for line in lines] == [str(bad.resolve())]


WRITER = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from retrieval.stores.milvus import MilvusStore
    from retrieval.types import Record
    store = MilvusStore(sys.argv[1], "durable")
    store.ensure_collection(8, "m")
    vectors = np.random.default_rng(0).normal(size=(300, 8)).astype("float32")
    for start in range(0, 300, 50):
        store.upsert([Record(id=f"r{i}", vector=vectors[i], source=f"s{i}", model_id="m")
                      for i in range(start, start + 50)])
    print("written", flush=True)
    time.sleep(120)
    """
)


def test_milvus_lite_keeps_unflushed_upserts_across_kill_dash_nine(tmp_path: Path) -> None:
    db = tmp_path / "durable.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db)], cwd=tmp_path, env=_env(),
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"written"
    finally:
        _kill_hard(proc)
        if proc.stdout:
            proc.stdout.close()
    with MilvusStore(str(db), "durable") as store:
        assert store.count() == 300
