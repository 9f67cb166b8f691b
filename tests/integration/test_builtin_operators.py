"""mmrag's built-in operators in a towhee-style pipeline: files -> CLIP -> Milvus -> search."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipelines import list_operators, ops, pipe
from pipelines.errors import OperatorError
from retrieval.ids import content_id
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
