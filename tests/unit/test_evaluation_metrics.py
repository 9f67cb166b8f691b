"""Retrieval metrics on hand-made rankings, and the queries file format of `mmrag eval`."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from retrieval.errors import ConfigError
from retrieval.evaluation import (
    ann_recall,
    load_queries,
    ndcg_at_k,
    precision_at_k,
    ranking_metrics,
    recall_at_k,
    reciprocal_rank,
)

RANKING = ["x", "a", "y", "b", "z"]


def test_recall_is_the_share_of_relevant_items_in_the_top_k() -> None:
    relevant = {"a", "b", "missing"}
    assert recall_at_k(RANKING, relevant, 1) == 0.0
    assert recall_at_k(RANKING, relevant, 2) == pytest.approx(1 / 3)
    assert recall_at_k(RANKING, relevant, 10) == pytest.approx(2 / 3)
    assert recall_at_k(RANKING, {"a"}, 2) == 1.0  # one relevant item: hit@k
    assert recall_at_k(RANKING, set(), 5) == 0.0


def test_precision_counts_missing_slots_as_misses() -> None:
    assert precision_at_k(RANKING, {"a", "b"}, 5) == pytest.approx(2 / 5)
    assert precision_at_k(["a"], {"a"}, 5) == pytest.approx(1 / 5)
    assert precision_at_k(RANKING, {"x"}, 1) == 1.0


def test_reciprocal_rank_of_the_first_relevant_item() -> None:
    assert reciprocal_rank(RANKING, {"y", "b"}) == pytest.approx(1 / 3)
    assert reciprocal_rank(RANKING, {"x"}) == 1.0
    assert reciprocal_rank(RANKING, {"nowhere"}) == 0.0


def test_ndcg_with_binary_gains() -> None:
    dcg = 1 / math.log2(3) + 1 / math.log2(5)  # relevant at ranks 2 and 4
    ideal = 1 + 1 / math.log2(3)  # two relevant items at ranks 1 and 2
    assert ndcg_at_k(RANKING, {"a", "b"}, 10) == pytest.approx(dcg / ideal)
    assert ndcg_at_k(["a", "b", "x"], {"a", "b"}, 10) == pytest.approx(1.0)
    assert ndcg_at_k(RANKING, {"z"}, 4) == 0.0  # beyond the cut-off
    assert ndcg_at_k(RANKING, set(), 10) == 0.0


def test_ndcg_ideal_is_capped_at_k() -> None:
    many = {f"r{i}" for i in range(12)}
    ranking = [f"r{i}" for i in range(10)]
    assert ndcg_at_k(ranking, many, 10) == pytest.approx(1.0)
    assert recall_at_k(ranking, many, 10) == pytest.approx(10 / 12)


def test_ranking_metrics_keys_and_values() -> None:
    metrics = ranking_metrics(RANKING, {"a"})
    assert metrics == {
        "recall@1": 0.0,
        "recall@5": 1.0,
        "recall@10": 1.0,
        "precision@5": pytest.approx(0.2),
        "mrr": 0.5,
        "ndcg@10": pytest.approx(1 / math.log2(3)),
    }


def test_ann_recall_counts_ties_as_hits() -> None:
    exact = [0.9, 0.8, 0.7]
    assert ann_recall([0.9, 0.8, 0.7], exact) == 1.0
    assert ann_recall([0.9, 0.7, 0.7], exact) == 1.0  # another item tied at the cut-off score
    assert ann_recall([0.9, 0.8, 0.5], exact) == pytest.approx(2 / 3)
    assert ann_recall([0.9], exact) == pytest.approx(1 / 3)  # the index returned too few
    assert ann_recall([], []) == 1.0


def test_load_jsonl_queries(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text(
        '{"query": " a red circle ", "relevant": ["id1", "id2"]}\n'
        "\n"
        '{"id": "img", "image": "pics/q.png", "relevant_where": {"colour": "red"}}\n'
        '{"query": "one", "relevant": "id3"}\n',
        encoding="utf-8",
    )
    first, second, third = load_queries(path)
    assert (first.qid, first.kind, first.text, first.relevant) == (
        "line1", "text", "a red circle", frozenset({"id1", "id2"})
    )
    assert (second.qid, second.kind, second.image) == ("img", "image", tmp_path / "pics/q.png")
    assert second.where == {"colour": "red"} and second.relevant == frozenset()
    assert third.relevant == frozenset({"id3"})


def test_load_csv_queries(tmp_path: Path) -> None:
    path = tmp_path / "q.csv"
    path.write_text(
        "id,query,image,relevant,relevant_where\n"
        'a,a dog,,id1|id2 id3,\n'
        'b,,/abs/q.jpg,,"{""shape"": ""star""}"\n',
        encoding="utf-8",
    )
    first, second = load_queries(path)
    assert first.text == "a dog" and first.relevant == frozenset({"id1", "id2", "id3"})
    assert second.image == Path("/abs/q.jpg") and second.where == {"shape": "star"}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"query": "x", "image": "y.png", "relevant": ["a"]}', "exactly one of"),
        ('{"relevant": ["a"]}', "exactly one of"),
        ('{"query": "x"}', "relevant"),
        ('{"query": "x", "relevant": [1]}', "list of ids"),
        ('{"query": "x", "relevant_where": {}}', "non-empty object"),
        ('{"query": "  ", "relevant": ["a"]}', "non-empty text"),
        ("[1, 2]", "not a JSON object"),
        ("{nope", "not JSON"),
    ],
)
def test_bad_query_lines_are_refused(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text(line + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_queries(path)


def test_empty_missing_and_duplicate_queries_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_queries(tmp_path / "none.jsonl")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="no query"):
        load_queries(empty)
    twice = tmp_path / "twice.jsonl"
    twice.write_text('{"id": "q", "query": "a", "relevant": ["x"]}\n' * 2, encoding="utf-8")
    with pytest.raises(ConfigError, match="appears twice"):
        load_queries(twice)
