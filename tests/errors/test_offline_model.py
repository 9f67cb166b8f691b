"""The default model without network (#17.3): one whole message, at once, saying what to do.

The hub is made unreachable for certain (HF_ENDPOINT at a closed loopback port, an empty cache),
so nothing here depends on this machine's network.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from huggingface_hub import constants as hub_constants

from retrieval.components import Components
from retrieval.config import DEFAULT_MODEL, DEFAULT_PRETRAINED, Settings
from retrieval.embedders import create_embedder
from retrieval.errors import ModelNotFoundError
from retrieval.model_spec import model_spec
from retrieval.stores import open_store
from tests.support.tiny_model import TINY_MODEL_NAME

REPO = Path(__file__).resolve().parents[2]
DEFAULT_REPO = "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"


def closed_port() -> int:
    """A loopback port nothing listens on: connecting is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def offline_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The hub at a closed port and an empty cache, in this process; returns the cache."""
    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setattr(hub_constants, "ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
    return cache


def assert_whole_weights_message(message: str, cache: Path) -> None:
    """The message names the file, where it is looked for, and every way out, uncut."""
    assert f"The weights of {DEFAULT_MODEL}/{DEFAULT_PRETRAINED} are not on this machine" in message
    assert f"repository {DEFAULT_REPO}" in message
    assert "open_clip_model.safetensors (or open_clip_pytorch_model.bin)" in message
    assert str(cache / f"models--{DEFAULT_REPO.replace('/', '--')}") in message
    assert "--checkpoint PATH" in message and "MMRAG_CHECKPOINT" in message
    assert message.rstrip().endswith("MMRAG_MODEL=mmrag-demo (--model mmrag-demo).")


def test_ingest_with_the_default_model_offline_fails_once_with_a_whole_message(
    tmp_path: Path, make_image_files
) -> None:
    images = make_image_files(1)
    cache = tmp_path / "empty-hf-cache"
    cache.mkdir()
    env = {**os.environ, "HF_ENDPOINT": f"http://127.0.0.1:{closed_port()}",
           "HF_HUB_CACHE": str(cache), "COLUMNS": "200"}
    for name in ("HF_HUB_OFFLINE", "MMRAG_MODEL", "MMRAG_PRETRAINED", "MMRAG_CHECKPOINT",
                 "MMRAG_LOG_LEVEL"):
        env.pop(name, None)
    done = subprocess.run(
        [sys.executable, "-m", "mmrag", "ingest", str(images[0].parent),
         "--uri", str(tmp_path / "x.db")],
        cwd=REPO, capture_output=True, text=True, env=env, timeout=600,
    )
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, done.stderr  # printed once, by the command only
    assert errors[0].startswith("mmrag ingest: error: The weights of")
    assert_whole_weights_message(errors[0], cache)
    assert "Retrying" not in done.stderr and "huggingface_hub" not in done.stderr


def test_a_collection_recording_another_model_is_named_first(
    offline_hub: Path, tmp_path: Path
) -> None:
    db = tmp_path / "demo.db"
    demo = model_spec("mmrag-demo")
    with open_store(str(db), "mmrag") as store:
        store.ensure_collection(32, "mmrag-demo/ckpt-0123456789ab", spec=demo)
    settings = Settings(uri=str(db), collection="mmrag", model=DEFAULT_MODEL, device="cpu")
    with open_store(str(db), "mmrag") as store:
        components = Components(settings=settings, store=store)
        with pytest.raises(ModelNotFoundError) as caught:
            _ = components.embedder
    message = str(caught.value)
    assert message.startswith(
        f"Collection 'mmrag' at {db} was built with mmrag-demo/ckpt-0123456789ab: read it with "
        f"--model mmrag-demo, not the configured model '{DEFAULT_MODEL}'. The weights of"
    ), message
    assert_whole_weights_message(message, offline_hub)


def test_hf_hub_offline_is_honoured_without_asking_the_hub(
    offline_hub: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hub_constants, "ENDPOINT", "http://hub.invalid")  # never asked
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelNotFoundError, match="HF_HUB_OFFLINE is set") as caught:
        create_embedder(DEFAULT_MODEL, pretrained=DEFAULT_PRETRAINED, device="cpu")
    assert_whole_weights_message(str(caught.value), offline_hub)


def test_cached_weights_of_a_tag_load_without_network(
    offline_hub: Path, monkeypatch: pytest.MonkeyPatch, tiny_model_files: tuple[Path, Path],
    tiny_embedder,
) -> None:
    """A tag whose file is in the hub cache loads from there (hub unreachable), with the tag's
    preprocessing, as the same model as its checkpoint."""
    import open_clip

    config, checkpoint = tiny_model_files
    open_clip.add_model_config(config)
    tag = {"hf_hub": "mmrag-test/tiny/", "interpolation": "bilinear", "mean": (0.5, 0.5, 0.5),
           "std": (0.25, 0.25, 0.25)}
    monkeypatch.setitem(open_clip.pretrained._PRETRAINED, TINY_MODEL_NAME, {"cached": tag})
    folder = offline_hub / "models--mmrag-test--tiny"
    revision = "0" * 40
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(revision)
    snapshot = folder / "snapshots" / revision
    snapshot.mkdir(parents=True)
    (snapshot / "open_clip_model.safetensors").write_bytes(checkpoint.read_bytes())
    embedder = create_embedder(TINY_MODEL_NAME, pretrained="cached", device="cpu",
                               precision="fp32")
    assert embedder.model_id == f"{TINY_MODEL_NAME}/cached"
    cfg = embedder.model.visual.preprocess_cfg  # type: ignore[attr-defined]
    assert cfg["interpolation"] == "bilinear" and tuple(cfg["mean"]) == (0.5, 0.5, 0.5)
    texts = ["a red square", "two cats"]
    np.testing.assert_allclose(
        embedder.embed_texts(texts), tiny_embedder.embed_texts(texts), atol=1e-6
    )


def test_the_api_503_carries_the_whole_message(offline_hub: Path, tmp_path: Path) -> None:
    from retrieval.api import create_app

    db = tmp_path / "vitb32.db"
    with open_store(str(db), "items") as store:
        store.ensure_collection(512, f"{DEFAULT_MODEL}/{DEFAULT_PRETRAINED}",
                                spec=model_spec(DEFAULT_MODEL, DEFAULT_PRETRAINED))
    settings = Settings(uri=str(db), collection="items", model=DEFAULT_MODEL,
                        pretrained=DEFAULT_PRETRAINED, device="cpu")
    with TestClient(create_app(settings)) as client:
        search = client.post("/search", json={"query": "a dog"})
        ready = client.get("/ready")
    assert search.status_code == 503, search.text
    error = search.json()["error"]
    assert error["type"] == "model_unavailable"
    assert "was built with this model" in error["message"]
    assert_whole_weights_message(error["message"], offline_hub)
    assert ready.status_code == 503
    assert_whole_weights_message(ready.json()["error"]["message"], offline_hub)


def test_hub_log_lines_print_once() -> None:
    """huggingface_hub adds a stderr handler of its own and propagates to the root's: the CLI's
    logging leaves one, so a retry warning is one line, in the application's format."""
    code = (
        "import logging; from mmrag.logs import configure_logging; configure_logging('warning');"
        "logging.getLogger('huggingface_hub.utils._http').warning('Retrying in 1s [Retry 1/5].')"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("Retrying in 1s") == 1, done.stderr
    assert "WARNING huggingface_hub.utils._http: Retrying in 1s [Retry 1/5]." in done.stderr
