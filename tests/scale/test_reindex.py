"""mmrag reindex: a new model (and dimension) without downtime, on a server and on Milvus Lite."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import httpx
import pytest
from fastapi.testclient import TestClient

from ingest.reindex import next_version
from mmrag.cli import main as mmrag_main
from retrieval.api import create_app
from retrieval.api import follow as api_follow
from retrieval.config import Settings
from retrieval.stores import lite_aliases
from retrieval.stores.milvus import MilvusStore
from retrieval.types import Modality, Record
from tests.api.helpers import free_port, wait_ready
from tests.contract.helpers import EmbeddedServer
from tests.scale.helpers import (
    MODEL_B_DIM,
    ingest_folder,
    make_model_b,
    model_args,
    tiny_settings,
)
from tests.support.images import make_test_image, write_image_files

REPO = Path(__file__).resolve().parents[2]


def _serve(uri: str, collection: str, config: Path, checkpoint: Path, log: Path) -> tuple:
    """``python -m mmrag serve`` on a free port with model A; returns (process, base URL)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMRAG_")}
    env.update(MMRAG_URI=uri, MMRAG_COLLECTION=collection, MMRAG_MODEL=str(config),
               MMRAG_CHECKPOINT=str(checkpoint), MMRAG_PRETRAINED="", MMRAG_DEVICE="cpu",
               MMRAG_LOG_LEVEL="warning", PYTHONUNBUFFERED="1")
    port = free_port()
    with open(log, "wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "mmrag", "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO, env=env, stdout=sink, stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    with httpx.Client(base_url=base, timeout=5.0, trust_env=False) as probe:
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if probe.get("/ready").status_code == 200:
                    return process, base
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)


class _Searcher(threading.Thread):
    """Searches in a loop until stopped; remembers every failure."""

    def __init__(self, base: str) -> None:
        super().__init__(daemon=True)
        self.base = base
        self.stop = threading.Event()
        self.ok = 0
        self.failures: list[str] = []

    def run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=30.0, trust_env=False) as http:
            while not self.stop.is_set():
                response = http.post("/search", json={"query": "a red circle", "k": 3})
                if response.status_code == 200 and len(response.json()["hits"]) == 3:
                    self.ok += 1
                else:
                    self.failures.append(f"{response.status_code} {response.text[:200]}")
                time.sleep(0.02)


@pytest.mark.server
@pytest.mark.slow
def test_server_reindex_switches_the_alias_while_serving(
    tmp_path: Path, milvus_server: EmbeddedServer, tiny_model_files: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    config_a, ckpt_a = tiny_model_files
    config_b, ckpt_b = make_model_b(tmp_path / "model_b")
    name = f"gallery_{time.monotonic_ns()}"
    settings = tiny_settings(milvus_server.uri, name, config_a, ckpt_a)
    write_image_files(tmp_path / "images", 12)
    assert ingest_folder(settings, tmp_path / "images").ingested == 12
    process, base = _serve(milvus_server.uri, name, config_a, ckpt_a, tmp_path / "serve.log")
    searcher = _Searcher(base)
    try:
        with httpx.Client(base_url=base, timeout=30.0, trust_env=False) as http:
            model_a = http.get("/ready").json()["model"]
            searcher.start()
            code = mmrag_main(["reindex", "--uri", milvus_server.uri, "--collection", name,
                               *model_args(config_b, ckpt_b), "--json",
                               "--rejects", str(tmp_path / "rejects.jsonl")])
            summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
            assert code == 0, summary
            assert summary["adopted"] and summary["switched"]
            assert (summary["old_collection"], summary["new_collection"]) == (
                f"{name}_v1", f"{name}_v2")
            assert (summary["total"], summary["embedded"], summary["dim"]) == (12, 12, MODEL_B_DIM)
            deadline = time.monotonic() + 30
            while http.get("/ready").json()["model"] == model_a:  # the API follows the alias
                assert time.monotonic() < deadline, "the API did not switch models"
                time.sleep(0.2)
            time.sleep(1.0)
            stats = http.get("/stats").json()
            assert stats["model"] == stats["query_model"] == summary["new_model"] != model_a
            assert (stats["dimension"], stats["count"]) == (MODEL_B_DIM, 12)
        searcher.stop.set()
        searcher.join(30)
        assert not searcher.failures, searcher.failures[:3]
        assert searcher.ok > 10
        with MilvusStore(milvus_server.uri, f"{name}_v2") as new:
            assert new.list_aliases() == [name] and new.model_spec() is not None
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0
        # a fresh API with the stale MMRAG_MODEL (model A) loads the collection's model B
        process, base = _serve(milvus_server.uri, name, config_a, ckpt_a, tmp_path / "s2.log")
        with httpx.Client(base_url=base, timeout=30.0, trust_env=False) as http:
            assert http.get("/ready").json()["model"] == summary["new_model"]
            hits = http.post("/search", json={"query": "a red circle", "k": 5}).json()["hits"]
            assert len(hits) == 5
    finally:
        searcher.stop.set()
        if process.poll() is None:
            process.kill()
            process.wait(10)
        for suffix in ("_v1", "_v2"):
            with MilvusStore(milvus_server.uri, name + suffix) as store:
                store.drop_alias(name)
                store.drop()


def test_lite_reindex_points_the_name_at_the_new_collection(
    tmp_path: Path, tiny_model_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config_a, ckpt_a = tiny_model_files
    config_b, ckpt_b = make_model_b(tmp_path / "model_b")
    db = tmp_path / "gallery.db"
    settings = tiny_settings(str(db), "gallery", config_a, ckpt_a)
    images = write_image_files(tmp_path / "images", 10)
    _write_video(tmp_path / "images" / "clip.avi")  # 3 s: frames at t=0 and t=2
    assert ingest_folder(settings, tmp_path / "images").ingested == 12
    _add_text_row(settings)  # a caption-only row: re-embedded from its caption
    moved = images[3].with_suffix(".moved")
    shutil.move(images[3], moved)
    argv = ["reindex", "--uri", str(db), "--collection", "gallery",
            *model_args(config_b, ckpt_b), "--json"]
    assert mmrag_main(argv) == 1  # a source is missing: nothing is switched
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (summary["embedded"], summary["rejected"], summary["switched"]) == (12, 1, False)
    assert lite_aliases.read_aliases(db) == {}
    lines = (tmp_path / "mmrag-rejects-gallery-reindex.jsonl").read_text().splitlines()
    assert [json.loads(line)["source"] for line in lines] == [str(images[3])]
    shutil.move(moved, images[3])
    assert mmrag_main(argv) == 0  # resumes: only the missing row is embedded
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (summary["embedded"], summary["skipped"], summary["switched"]) == (1, 12, True)
    assert lite_aliases.read_aliases(db) == {"gallery": "gallery_v2"}

    monkeypatch.setattr(api_follow, "FOLLOW_INTERVAL_S", 0.2)
    with TestClient(create_app(settings)) as client:  # settings still name model A
        wait_ready(client)
        stats = client.get("/stats").json()
        assert stats["model"] == stats["query_model"] == summary["new_model"]
        assert (stats["dimension"], stats["count"]) == (MODEL_B_DIM, 13)
        hits = client.post("/search", json={"query": "a red circle", "k": 4}).json()["hits"]
        assert len(hits) == 4

        # back to model A, in the same process the API runs in: the API follows the pointer
        back = ["reindex", "--uri", str(db), "--collection", "gallery",
                *model_args(config_a, ckpt_a), "--drop-old", "--grace", "0.5", "--json"]
        assert mmrag_main(back) == 0
        summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert summary["new_collection"] == "gallery_v3" and summary["dropped_old"]
        deadline = time.monotonic() + 20
        while client.get("/stats").json()["query_model"] != summary["new_model"]:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert client.get("/stats").json()["dimension"] == 32
        assert len(client.post("/search", json={"query": "a dog", "k": 3}).json()["hits"]) == 3
    with MilvusStore(str(db), "gallery") as store:
        assert "gallery_v2" not in store.list_collections()
        assert store.resolve() == "gallery_v3"


def _write_video(path: Path) -> None:
    """A 3 s, 10 fps MJPG video."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10, (80, 64))
    for index in range(30):
        writer.write(cv2.cvtColor(make_test_image(300 + index, 64, 80), cv2.COLOR_RGB2BGR))
    writer.release()


def _add_text_row(settings: Settings) -> None:
    """Store one text row (its vector is the caption's embedding)."""
    from retrieval.components import build_components

    components = build_components(settings)
    try:
        vector = components.embedder.embed_texts(["a note about red circles"])[0]
        components.store.upsert([Record(
            id="note-1", vector=vector, source="notes.txt", caption="a note about red circles",
            modality=Modality.TEXT, model_id=components.embedder.model_id,
        )])
        components.store.flush()
    finally:
        components.close()


def test_next_version_names() -> None:
    assert next_version("mmrag", []) == "mmrag_v2"
    assert next_version("mmrag", ["mmrag", "mmrag_v1", "mmrag_v7", "mmrag_vx", "other_v9"]) == (
        "mmrag_v8"
    )
    assert next_version("a", ["a_v2", "ab_v5"]) == "a_v3"


def test_reindex_refuses_the_same_model(
    tmp_path: Path, tiny_model_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    config_a, ckpt_a = tiny_model_files
    db = tmp_path / "same.db"
    write_image_files(tmp_path / "images", 2)
    ingest_folder(tiny_settings(str(db), "gallery", config_a, ckpt_a), tmp_path / "images")
    argv = ["reindex", "--uri", str(db), "--collection", "gallery", *model_args(config_a, ckpt_a)]
    assert mmrag_main(argv) == 2
    assert "already built" in capsys.readouterr().err
