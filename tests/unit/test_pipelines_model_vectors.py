"""Vectors from the CLIP operator carry their model through normalising, rows and pickling."""

from __future__ import annotations

import pickle

import numpy as np

from pipelines import ops
from retrieval.embedders.tagged import EmbeddingModel, ModelVectors, model_of, with_model

SPEC = {"model": "tiny", "pretrained": None, "checkpoint": None}
MODEL = EmbeddingModel("tiny/ckpt-abc", 3, SPEC)


def test_rows_views_and_arithmetic_keep_the_model_and_asarray_drops_it() -> None:
    batch = ModelVectors(np.arange(6, dtype=np.float32).reshape(2, 3), MODEL)
    rows = list(batch)
    assert [model_of(r) for r in rows] == [MODEL, MODEL]
    assert model_of(rows[1] / np.linalg.norm(rows[1])) == MODEL
    assert model_of(np.asarray(rows[0])) is None
    assert type(np.asarray(rows[0])) is np.ndarray


def test_pickling_keeps_the_model() -> None:
    row = ModelVectors(np.ones((2, 3)), MODEL)[0]
    again = pickle.loads(pickle.dumps(row))
    assert model_of(again) == MODEL
    np.testing.assert_array_equal(again, row)


def test_with_model_none_is_a_plain_float32_array() -> None:
    out = with_model(np.ones(3, dtype=np.float64), None)
    assert type(out) is np.ndarray
    assert out.dtype == np.float32


def test_np_normalize_keeps_each_vectors_model() -> None:
    normalize = ops.towhee.np_normalize()
    one = normalize(ModelVectors(np.array([3.0, 4.0, 0.0]), MODEL))
    assert model_of(one) == MODEL
    np.testing.assert_allclose(one, [0.6, 0.8, 0.0], rtol=1e-6)
    batch = normalize([ModelVectors(np.array([0.0, 2.0, 0.0]), MODEL), np.array([1.0, 0, 0])])
    assert [model_of(v) for v in batch] == [MODEL, None]
    np.testing.assert_allclose(np.stack(batch), [[0, 1, 0], [1, 0, 0]])
