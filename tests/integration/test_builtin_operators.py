"""mmrag's built-in operators in a towhee-style pipeline: files -> CLIP -> Milvus -> search."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipelines import list_operators, ops, pipe
from pipelines.errors import OperatorError
from retrieval.embedders.tagged import EmbeddingModel, ModelVectors
from retrieval.ids import content_id
from retrieval.model_spec import model_spec
from retrieval.stores import open_store
from tests.support.tiny_model import TINY_MODEL_NAME


@pytest.fixture
def clip_kwargs(tiny_model_files: tuple[Path, Path], tiny_embedder) -> dict:
    """Operator arguments loading the tiny model from its checkpoint (config already registered)."""
    _, checkpoint = tiny_model_files
    return {"model_name": TINY_MODEL_NAME, "checkpoint": str(checkpoint), "device": "cpu"}


def test_builtin_operators_are_registered_under_towhee_names() -> None:
    names = set(list_operators())
    assert {
        "image-decode/cv2-rgb",
        "image-text-embedding/clip",
        "towhee/np-normalize",
        "ann-insert/milvus-client",
        "ann-search/milvus-client",
    } <= names


def test_insert_then_search_pipeline(tmp_path: Path, make_image_files, clip_kwargs: dict) -> None:
    files = make_image_files(9)
    uri, collection = str(tmp_path / "ops.db"), "ops"
    inserter = ops.ann_insert.milvus_client(uri=uri, collection=collection, model_id="tiny")
    insert = (
        pipe.input("id", "path")
        .map("path", "img", ops.image_decode.cv2_rgb(), config={"workers": 2})
        .map("img", "vec", ops.image_text_embedding.clip(**clip_kwargs), config={"batch_size": 4})
        .map("vec", "vec", ops.towhee.np_normalize())
        .map(("id", "vec", "path"), (), inserter, config={"batch_size": 4})
        .output()
    )
    ids = [content_id(f.read_bytes()) for f in files]
    insert.batch(list(zip(ids, [str(f) for f in files], strict=True)))
    insert.flush()

    search = (
        pipe.input("path")
        .map("path", "img", ops.image_decode.cv2_rgb())
        .map("img", "vec", ops.image_text_embedding.clip(**clip_kwargs))
        .map("vec", "rows", ops.ann_search.milvus_client(uri=uri, collection=collection, limit=3))
        .output("rows")
    )
    for path, expected_id in zip(files, ids, strict=True):
        rows = search(str(path)).get()[0]
        top_id, score, source, _caption = rows[0]
        assert top_id == expected_id
        assert source == str(path)
        assert score == pytest.approx(1.0, abs=1e-4)

    text = (
        pipe.input("text")
        .map("text", "vec", ops.image_text_embedding.clip(modality="text", **clip_kwargs))
        .output("vec")
    )
    vec = text("a photo of noise").get()[0]
    assert vec.dtype == np.float32
    assert np.linalg.norm(vec) == pytest.approx(1.0, abs=1e-5)


def test_decode_error_names_the_operator_and_row(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    p = pipe.input("path").map("path", "img", ops.image_decode.cv2_rgb()).output("img")
    with pytest.raises(OperatorError) as err:
        p(str(bad)).get()
    assert "image-decode/cv2-rgb" in str(err.value)
    assert "bad.jpg" in str(err.value)


def test_insert_records_the_model_the_vectors_carry(
    tmp_path: Path, make_image_files, clip_kwargs: dict
) -> None:
    files = make_image_files(3)
    uri, collection = str(tmp_path / "ops.db"), "ops"
    clip = ops.image_text_embedding.clip(**clip_kwargs)
    inserter = ops.ann_insert.milvus_client(uri=uri, collection=collection)  # no model_id
    insert = (
        pipe.input("id", "path")
        .map("path", "img", ops.image_decode.cv2_rgb())
        .map("img", "vec", clip)
        .map(("id", "vec", "path"), (), inserter)
        .output()
    )
    insert.batch([(f"r{i}", str(f)) for i, f in enumerate(files)])
    inserter.flush()
    with open_store(uri, collection) as store:
        info = store.info()
        assert info.model_id == clip.embedder.model_id
        assert info.dim == clip.embedder.dim
        assert store.model_spec() == model_spec(TINY_MODEL_NAME, None, clip_kwargs["checkpoint"])
        assert {r.model_id for batch in store.iterate(10) for r in batch} == {info.model_id}


def test_insert_of_plain_vectors_records_model_id_and_refuses_another_model(
    tmp_path: Path,
) -> None:
    uri = str(tmp_path / "plain.db")
    inserter = ops.ann_insert.milvus_client(uri=uri, collection="plain", model_id="made/elsewhere")
    inserter("a", np.array([1.0, 0.0, 0.0, 0.0], dtype=np.float32))
    other = ModelVectors(np.array([0.0, 1.0, 0.0, 0.0]), EmbeddingModel("other/model", 4))
    with pytest.raises(ValueError, match="other/model"):
        inserter("b", other)
    inserter.flush()
    with open_store(uri, "plain") as store:
        assert store.info().model_id == "made/elsewhere"
        assert store.model_spec() is None
        assert store.info().count == 1


def test_decode_reads_files_like_the_ingest_job(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    p = pipe.input("path").map("path", "img", ops.image_decode.cv2_rgb()).output("img")
    with pytest.raises(OperatorError, match="empty file"):
        p(str(empty)).get()
    with pytest.raises(OperatorError, match="not a regular file"):
        p(str(tmp_path)).get()


def test_decode_fetches_http_urls_with_the_ingest_fetcher(tmp_path: Path) -> None:
    import cv2

    from retrieval.fetch import FetchError, FetchOptions
    from tests.ingest.helpers import Route, noise_jpeg, serve

    jpeg = noise_jpeg(3)
    routes = {
        "/dog.jpg": Route(body=jpeg),
        "/page.html": Route(body=b"<html></html>", content_type="text/html"),
        "/big.jpg": Route(body=b"\xff\xd8\xff" + b"0" * 5000),
    }
    for server in serve(routes):
        expected = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        bgr = ops.image_decode()(server.url("/dog.jpg"))  # towhee's default: BGR
        assert bgr.mode == "BGR"
        np.testing.assert_array_equal(np.asarray(bgr), expected)
        p = pipe.input("url").map("url", "img", ops.image_decode.cv2("rgb")).output("img")
        rgb = p(server.url("/dog.jpg")).get()[0]
        np.testing.assert_array_equal(np.asarray(rgb), expected[..., ::-1])
        with pytest.raises(OperatorError, match="is not an image"):
            p(server.url("/page.html"))
        capped = ops.image_decode.cv2_rgb(fetch=FetchOptions(max_bytes=1000, retries=0))
        with pytest.raises(FetchError, match="over the cap of 1000"):
            capped(server.url("/big.jpg"))
