"""Collections record their model; readers follow a MOVED name (a reindex) to its model only.

The rule (``retrieval/follow_model.py``): explicit configuration wins for a plain collection, a
name that an alias or Lite pointer resolves to another collection is read with that collection's
recorded model. Real tiny open_clip models on Milvus Lite; the CLI runs in-process via ``main``.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from mmrag.cli import main as mmrag_main
from retrieval.api import create_app
from retrieval.config import Settings
from retrieval.embedders import create_embedder_from_settings
from retrieval.follow_model import should_follow
from retrieval.imaging import decode_image
from retrieval.model_spec import spec_from_settings
from retrieval.search import Searcher, SearchRequest
from retrieval.stores import lite_aliases
from retrieval.stores.milvus import MilvusStore, Target
from tests.api.helpers import error_of, wait_ready
from tests.scale.helpers import MODEL_B_DIM, make_model_b, model_args, tiny_settings
from tests.support.images import write_image_files

IMAGES = 6


def _flags(settings: Settings) -> list[str]:
    """CLI flags naming these settings' store and model."""
    assert settings.checkpoint is not None
    return ["--uri", settings.uri, "--collection", settings.collection, "--pretrained", "",
            *model_args(Path(settings.model), settings.checkpoint)]


def _ingest(settings: Settings, folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``mmrag ingest FOLDER`` with these settings."""
    assert mmrag_main(["ingest", str(folder), "--json", *_flags(settings)]) == 0
    assert json.loads(capsys.readouterr().out)["ingested"] == IMAGES


def _reindex(
    settings: Settings, config: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> dict:
    """``mmrag reindex`` the settings' collection to another model; returns the summary."""
    argv = ["reindex", "--uri", settings.uri, "--collection", settings.collection,
            *model_args(config, checkpoint), "--json"]
    assert mmrag_main(argv) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["switched"] and summary["dim"] == MODEL_B_DIM
    return summary


@pytest.fixture
def gallery(tmp_path: Path, tiny_model_files: tuple[Path, Path]) -> tuple[Settings, list[Path]]:
    """Settings naming model A on a fresh Lite file (collection ``gallery``) and image files."""
    config_a, ckpt_a = tiny_model_files
    settings = tiny_settings(str(tmp_path / "gallery.db"), "gallery", config_a, ckpt_a)
    return settings, write_image_files(tmp_path / "images", IMAGES)


def test_ingest_records_the_model_spec(
    gallery: tuple[Settings, list[Path]], capsys: pytest.CaptureFixture[str]
) -> None:
    settings, images = gallery
    _ingest(settings, images[0].parent, capsys)
    with MilvusStore(settings.uri, settings.collection) as store:
        target = store.describe_target()
    assert target.spec == spec_from_settings(settings)
    assert target.spec is not None and target.spec["checkpoint"] == str(settings.checkpoint)
    assert target.collection == "gallery" and target.dim == 32


def test_cli_follows_a_reindexed_name_to_its_new_model(
    gallery: tuple[Settings, list[Path]], tmp_path: Path, capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings, images = gallery
    config_b, ckpt_b = make_model_b(tmp_path / "model_b")
    _ingest(settings, images[0].parent, capsys)
    summary = _reindex(settings, config_b, ckpt_b, capsys)
    assert lite_aliases.read_aliases(Path(settings.uri)) == {"gallery": summary["new_collection"]}

    caplog.set_level(logging.INFO, logger="retrieval.follow_model")
    query = images[2]
    argv = ["search", "--image", str(query), "-k", "3", "--json", *_flags(settings)]  # model A
    assert mmrag_main(argv) == 0, capsys.readouterr().err
    hits = json.loads(capsys.readouterr().out)
    assert hits[0]["source"] == str(query.resolve())
    assert hits[0]["score"] == pytest.approx(1.0, abs=1e-4)
    assert summary["new_model"] in caplog.text  # the query model was the new collection's

    # the very hits model B gives for that image (not model A's: another dimension altogether)
    model_b = create_embedder_from_settings(
        tiny_settings(settings.uri, "gallery", config_b, ckpt_b)
    )
    assert model_b.model_id == summary["new_model"]
    with MilvusStore(settings.uri, "gallery") as store:
        expected = Searcher(model_b, store).search_image(
            decode_image(query.read_bytes()), SearchRequest(k=3)
        )
    assert [h["id"] for h in hits] == [h.id for h in expected]
    assert [h["score"] for h in hits] == pytest.approx([h.score for h in expected], abs=1e-5)

    assert mmrag_main(["search", "a red circle", "-k", "4", "--json", *_flags(settings)]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 4
    ask = ["ask", "a red circle", "--llm", "extractive", "-k", "2", "--json", *_flags(settings)]
    assert mmrag_main(ask) == 0, capsys.readouterr().err
    answer = json.loads(capsys.readouterr().out)
    assert len(answer["citations"]) == 2
    queries = tmp_path / "queries.jsonl"
    queries.write_text(json.dumps({"image": str(query), "relevant": [hits[0]["id"]]}) + "\n")
    assert mmrag_main(["eval", str(queries), "--keep-self", "--json", *_flags(settings)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["model"] == summary["new_model"]
    assert report["tasks"][0]["metrics"]["mrr"] == pytest.approx(1.0)


def test_cli_refuses_another_model_on_a_plain_collection(
    gallery: tuple[Settings, list[Path]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings, images = gallery
    config_b, ckpt_b = make_model_b(tmp_path / "model_b")
    _ingest(settings, images[0].parent, capsys)  # records model A's spec
    with MilvusStore(settings.uri, "gallery") as store:
        model_a = store.info().model_id
    other = tiny_settings(settings.uri, "gallery", config_b, ckpt_b)
    model_b = create_embedder_from_settings(other).model_id
    queries = tmp_path / "queries.jsonl"
    queries.write_text(json.dumps({"query": "a dog", "relevant": ["x"]}) + "\n")
    for command in (["search", "a dog", "--json"], ["ask", "a dog", "--llm", "extractive"],
                    ["eval", str(queries)]):
        assert mmrag_main([*command, *_flags(other)]) == 2  # configuration wins: no follow
        err = capsys.readouterr().err
        assert model_a in err and model_b in err and "reindex" in err
        assert f"--model {settings.model} --checkpoint {settings.checkpoint}" in err


def test_moved_name_whose_model_cannot_load(
    gallery: tuple[Settings, list[Path]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings, images = gallery
    config_b, ckpt_b = make_model_b(tmp_path / "model_b")
    _ingest(settings, images[0].parent, capsys)
    summary = _reindex(settings, config_b, ckpt_b, capsys)
    kept = shutil.copytree(tmp_path / "model_b", tmp_path / "kept_b")
    ckpt_b.unlink()  # the recorded checkpoint is gone

    # the configured model A is another model: a clear error, never a cross-model search
    assert mmrag_main(["search", "a dog", "--json", *_flags(settings)]) == 2
    err = capsys.readouterr().err
    assert "cannot be loaded" in err and summary["new_model"] in err and str(ckpt_b) in err
    with TestClient(create_app(settings)) as client:
        deadline = time.monotonic() + 60
        while "loading" in (response := client.get("/ready")).text:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert response.status_code == 503 and "cannot be loaded" in error_of(response)["message"]
        assert client.post("/search", json={"query": "a dog"}).status_code == 503

    # the same model's files elsewhere: used (with a warning), the search works
    same = tiny_settings(settings.uri, "gallery", kept / config_b.name, kept / ckpt_b.name)
    query = images[4]
    assert mmrag_main(["search", "--image", str(query), "-k", "2", "--json", *_flags(same)]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)[0]["source"] == str(query.resolve())


def test_api_keeps_the_configured_model_on_a_plain_collection(
    gallery: tuple[Settings, list[Path]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings, images = gallery
    config_b, ckpt_b = make_model_b(tmp_path / "model_b")
    _ingest(settings, images[0].parent, capsys)  # records model A's spec
    other = tiny_settings(settings.uri, "gallery", config_b, ckpt_b)
    model_b = create_embedder_from_settings(other).model_id
    with TestClient(create_app(other)) as client:
        wait_ready(client)
        stats = client.get("/stats").json()
        assert stats["query_model"] == model_b != stats["model"]
        response = client.post("/search", json={"query": "a dog"})
        assert response.status_code == 409, response.text


def test_the_rule() -> None:
    spec_a = {"model": "/m/a.json", "pretrained": None, "checkpoint": "/m/a.safetensors"}
    settings = Settings.model_validate({
        "uri": "x.db", "collection": "gallery", "model": "/m/a.json",
        "checkpoint": "/m/a.safetensors", "pretrained": None,
    })
    spec_b = {"model": "/m/b.json", "pretrained": None, "checkpoint": "/m/b.safetensors"}

    def target(collection: str, spec: dict | None) -> Target:
        return Target(collection=collection, model_id="m", dim=8, spec=spec)

    assert not should_follow(settings, None)
    assert not should_follow(settings, target("gallery", spec_b))  # plain: configuration wins
    assert should_follow(settings, target("gallery_v2", spec_b))  # moved, another model
    assert not should_follow(settings, target("gallery_v2", spec_a))  # moved, the same model
    assert not should_follow(settings, target("gallery_v2", None))  # moved, nothing recorded
