"""mmrag/bench/store.py: data generators, exact ground truth and recall (no timings asserted)."""

from __future__ import annotations

import numpy as np
import pytest

from mmrag.bench import store


def test_unit_vectors_are_unit_deterministic_and_chunked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store, "CHUNK", 7)  # several chunks
    a = store.unit_vectors(30, 16, seed=1)
    assert a.shape == (30, 16) and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(a, store.unit_vectors(30, 16, seed=1))
    assert not np.array_equal(a, store.unit_vectors(30, 16, seed=2))


def test_clustered_vectors_follow_their_clusters(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store, "CHUNK", 1000)  # several chunks
    mix = store.mixture(256, clusters=20, topics=4)
    assert mix.centres.shape == (20, 256) and mix.weights.sum() == pytest.approx(1.0)
    points, labels = store.clustered_vectors(5000, mix, seed=3)
    assert points.shape == (5000, 256) and points.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(points, axis=1), 1.0, atol=1e-5)
    # cosine to the own centre is 1/sqrt(1 + s^2) for spread s in 0.5..1.0 (0.71..0.89)
    own = np.einsum("ij,ij->i", points, mix.centres[labels])
    assert own.min() > 0.55 and own.max() < 0.95
    assert abs(own.mean() - np.mean(1 / np.sqrt(1 + mix.spread[labels] ** 2))) < 0.02
    # popularity differs between clusters
    counts = np.bincount(labels, minlength=20)
    assert counts.max() > 2 * counts.min()
    again, again_labels = store.clustered_vectors(5000, mix, seed=3)
    np.testing.assert_array_equal(points, again)
    np.testing.assert_array_equal(labels, again_labels)


def test_clustered_queries_are_fresh_and_their_neighbours_share_the_cluster() -> None:
    base, queries, base_labels, query_labels = store.dataset("clustered", 20_000, 30, 128)
    assert base_labels is not None and query_labels is not None
    assert not (np.abs(queries @ base.T) > 0.9999).any()  # never a database row
    truth, scores = store.exact_top_k(base, queries, 10)
    # ~10 rows a cluster here: most true neighbours still share the query's cluster (0.99 at
    # 100k x 512), against 1/2048 for unrelated labels
    assert store.same_cluster_share(truth, base_labels, query_labels) > 0.5
    assert (scores[:, 0] > 0.4).all()


def test_uniform_dataset_has_no_labels() -> None:
    base, queries, base_labels, query_labels = store.dataset("uniform", 100, 5, 8)
    assert base.shape == (100, 8) and queries.shape == (5, 8)
    assert base_labels is None and query_labels is None
    with pytest.raises(ValueError, match="unknown data set"):
        store.dataset("gaussian", 10, 1, 8)


@pytest.mark.parametrize("chunk_rows", [None, 1, 7, 64, 1000])
def test_exact_top_k_matches_a_full_sort(chunk_rows: int | None) -> None:
    rng = np.random.default_rng(0)
    base = rng.standard_normal((500, 24)).astype(np.float32)
    queries = rng.standard_normal((9, 24)).astype(np.float32)
    ids, scores = store.exact_top_k(base, queries, 10, chunk_rows=chunk_rows)
    full = queries @ base.T
    want = np.argsort(-full, axis=1)[:, :10]
    np.testing.assert_array_equal(ids, want)
    np.testing.assert_allclose(scores, np.take_along_axis(full, want, axis=1), rtol=1e-5)
    assert (np.diff(scores, axis=1) <= 0).all()


def test_exact_top_k_with_fewer_rows_than_k() -> None:
    base = np.eye(3, dtype=np.float32)
    ids, scores = store.exact_top_k(base, base[[2]], 10, chunk_rows=2)
    assert ids.tolist() == [[2, 0, 1]] or ids.tolist() == [[2, 1, 0]]
    assert scores.shape == (1, 3) and scores[0, 0] == 1.0


def test_recall_at_k() -> None:
    truth = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    assert store.recall_at_k([[1, 2, 3, 4], [8, 7, 6, 5]], truth) == 1.0
    assert store.recall_at_k([[1, 2, 9, 9], [0, 0, 0, 0]], truth) == 0.25
    assert store.recall_at_k([[4], [5, 6, 99]], truth) == pytest.approx((1 / 4 + 2 / 4) / 2)


def test_same_cluster_share() -> None:
    truth = np.array([[0, 1], [2, 3]])
    base_labels = np.array([7, 7, 7, 8])
    assert store.same_cluster_share(truth, base_labels, np.array([7, 8])) == 0.75


def test_plan_drops_index_types_above_their_size() -> None:
    entries = ["FLAT", ["AUTOINDEX", 100_000], "IVF_FLAT"]
    assert store._plan(entries, 100_000) == ["FLAT", "AUTOINDEX", "IVF_FLAT"]
    assert store._plan(entries, 1_000_000) == ["FLAT", "IVF_FLAT"]


@pytest.mark.slow
def test_run_on_milvus_lite_reports_recall_and_refusals() -> None:
    out = store.run({
        "sizes": [300], "dim": 16, "queries": 5, "exact_queries": 2,
        "datasets": {"uniform": ["FLAT", "IVF_FLAT"], "clustered": ["IVF_FLAT"]},
        "params": {"nlist": 8, "nprobe": 4, "nprobes": [2, 4]},
        "probe": ["FLAT", "NO_SUCH_INDEX"],
    })
    assert out["index_types"]["FLAT"] == "ok" and out["index_types"]["NO_SUCH_INDEX"] != "ok"
    rows = {(r["dataset"], r["index"]): r for r in out["results"]}
    assert set(rows) == {("uniform", "FLAT"), ("uniform", "IVF_FLAT"), ("clustered", "IVF_FLAT")}
    assert all("error" not in r for r in rows.values())
    assert rows[("uniform", "FLAT")]["recall_at_10"] == 1.0  # FLAT is exact
    assert rows[("uniform", "FLAT")]["insert_rows_s"] > 0
    assert "switch_s" in rows[("uniform", "IVF_FLAT")]
    assert [s["nprobe"] for s in rows[("clustered", "IVF_FLAT")]["sweep"]] == [2, 4]
    info = {d["dataset"]: d for d in out["datasets"]}
    assert 0.0 <= info["clustered"]["same_cluster_top10"] <= 1.0
    assert "same_cluster_top10" not in info["uniform"]
