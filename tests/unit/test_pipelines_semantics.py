"""pipelines: towhee's pipe semantics (map, flat_map, filter, window, window_all, broadcast)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pipelines import ListResult, SchemaError, pipe


def gen_range(n: int) -> Iterator[int]:
    yield from range(n)


def test_map_get_returns_a_list_per_row_then_none() -> None:
    p = pipe.input("a").map("a", "b", lambda x: x + 1).output("b")
    res = p(1)
    assert res.get() == [2]
    assert res.get() is None
    assert res.get() is None


def test_multiple_inputs_and_outputs() -> None:
    p = (
        pipe.input("a", "b")
        .map(("a", "b"), ("s", "d"), lambda x, y: (x + y, x - y))
        .output("a", "s", "d")
    )
    assert p(5, 3).to_list() == [[5, 8, 2]]
    assert p(5, 3).get_dict() == {"a": 5, "s": 8, "d": 2}
    assert p(5, 3).to_list(kv_format=True) == [{"a": 5, "s": 8, "d": 2}]
    with p(5, 3) as res:
        assert res.schema == ["a", "s", "d"]


def test_map_overwrites_a_column_and_generators_become_lists() -> None:
    p = pipe.input("a").map("a", "a", lambda x: x * 10).map("a", "g", gen_range).output("a", "g")
    assert p(1).to_list() == [[10, list(range(10))]]


def test_empty_output_schema_discards_the_result() -> None:
    seen: list[int] = []
    p = pipe.input("a").map("a", (), seen.append).map("a", "b", lambda x: x).output("b")
    assert p(7).to_list() == [[7]]
    assert seen == [7]


def test_pipeline_without_outputs_runs_to_completion_on_call() -> None:
    seen: list[int] = []
    p = pipe.input("n").flat_map("n", "i", range).map("i", (), seen.append).output()
    res = p(50)
    assert seen == list(range(50))
    assert res.get() is None


def test_flat_map_broadcasts_single_valued_columns() -> None:
    p = (
        pipe.input("url", "n")
        .flat_map("n", "i", range)
        .map("i", "sq", lambda i: i * i)
        .output("url", "i", "sq")
    )
    assert p("u", 3).to_list() == [["u", 0, 0], ["u", 1, 1], ["u", 2, 4]]


def test_flat_map_with_several_outputs_and_nested_flat_maps() -> None:
    p = (
        pipe.input("n")
        .flat_map("n", ("i", "t"), lambda n: [(k, str(k)) for k in range(n)])
        .flat_map("i", "j", range)
        .output("t", "j")
    )
    assert p(3).to_list() == [["1", 0], ["2", 0], ["2", 1]]


def test_single_valued_map_after_flat_map_runs_once_and_broadcasts() -> None:
    calls: list[int] = []

    def once(n: int) -> int:
        calls.append(n)
        return n * 100

    p = pipe.input("n").flat_map("n", "i", range).map("n", "m", once).output("i", "m")
    assert p(3).to_list() == [[0, 300], [1, 300], [2, 300]]
    assert calls == [3]


def test_all_single_valued_outputs_give_one_row_per_input_like_towhee() -> None:
    p = pipe.input("n").flat_map("n", "i", range).map("n", "m", lambda n: n * 100).output("m")
    assert p(3).to_list() == [[300]]
    assert p(0).to_list() == [[0]]
    both = pipe.input("n").flat_map("n", "i", range).map("n", "m", lambda n: n).output("i", "m")
    assert both(0).to_list() == []


def test_filter_copies_input_columns_to_outputs_on_true_rows() -> None:
    p = pipe.input("n").flat_map("n", "i", range).filter("i", "j", "i", lambda x: x % 2 == 0)
    assert p.output("j")(7).to_list() == [[0], [2], [4], [6]]


def test_filter_on_other_columns_and_on_single_valued_inputs() -> None:
    p = pipe.input("a", "c").filter("c", "d", "a", lambda a: a > 10).output("d")
    assert p(1, 12).get() is None
    assert p(11, 12).get() == [12]
    rows = (
        pipe.input("n")
        .flat_map("n", ("i", "w"), lambda n: [(k, f"w{k}") for k in range(n)])
        .filter(("i", "w"), ("i", "w"), "i", lambda i: i > 2)
        .output("i", "w")
    )
    assert rows(5).to_list() == [[3, "w3"], [4, "w4"]]


def test_window_matches_towhee_including_partial_tail_windows() -> None:
    base = pipe.input("n").flat_map("n", "i", range)
    assert base.window("i", "s", 3, 1, sum).output("s")(4).to_list() == [[3], [6], [5], [3]]
    gaps = base.window("i", "w", 2, 3, list).output("w")(8).to_list()
    assert gaps == [[[0, 1]], [[3, 4]], [[6, 7]]]
    two = (
        pipe.input("a", "b")
        .flat_map(("a", "b"), ("a", "b"), lambda x, y: list(zip(x, y, strict=True)))
        .window(("a", "b"), ("s1", "s2"), 2, 1, lambda x, y: (sum(x), sum(y)))
        .output("s1", "s2")
    )
    assert two([1, 2, 3, 4], [2, 3, 4, 5]).to_list() == [[3, 5], [5, 7], [7, 9], [4, 5]]


def test_window_all_gets_every_row_and_broadcasts_back() -> None:
    base = pipe.input("n").flat_map("n", "i", range)
    assert base.window_all("i", "s", sum).output("s")(5).to_list() == [[10]]
    assert base.window_all("i", "s", sum).output("i", "s")(3).to_list() == [[0, 3], [1, 3], [2, 3]]
    assert base.window_all("i", "s", sum).output("s")(0).to_list() == []


def test_window_on_single_valued_input_sees_one_row() -> None:
    p = pipe.input("a").window("a", "w", 2, 1, list).output("w")
    assert p(9).to_list() == [[[9]]]
    q = pipe.input("a").window_all("a", "w", list).output("w")
    assert q(9).to_list() == [[[9]]]


def test_stream_yields_rows_lazily_in_input_order() -> None:
    p = pipe.input("a", "b").map(("a", "b"), "c", lambda a, b: a * b).output("c")
    assert list(p.stream([(1, 2), (3, 4), (5, 6)])) == [[2], [12], [30]]
    single = pipe.input("t").map("t", "n", len).output("t", "n")
    assert list(single.stream([(1, 2), "abc"])) == [[(1, 2), 2], ["abc", 3]]


def test_windows_never_cross_inputs_in_a_stream() -> None:
    p = pipe.input("n").flat_map("n", "i", range).window("i", "w", 2, 2, list).output("n", "w")
    assert list(p.stream([3, 2])) == [[3, [0, 1]], [3, [2]], [2, [0, 1]]]


def test_batch_returns_one_materialised_result_per_input() -> None:
    p = pipe.input("n").flat_map("n", "i", range).output("i")
    results = p.batch([2, 0, 3])
    assert all(isinstance(r, ListResult) for r in results)
    assert [r.to_list() for r in results] == [[[0], [1]], [], [[0], [1], [2]]]
    first = p.batch([1])[0]
    assert first.size == 1 and first.get() == [0] and first.get() is None


def test_schema_errors_are_raised_when_building() -> None:
    with pytest.raises(SchemaError, match="undeclared"):
        pipe.input("a").map("b", "c", lambda x: x)
    with pytest.raises(SchemaError, match="letters"):
        pipe.input("a b")
    with pytest.raises(SchemaError, match="as many output"):
        pipe.input("a").filter(("a",), ("b", "c"), "a", bool)
    with pytest.raises(SchemaError, match="positive"):
        pipe.input("a").window("a", "b", 0, 1, list)
    with pytest.raises(SchemaError, match="undeclared"):
        pipe.input("a").output("zzz")
    with pytest.raises(SchemaError, match="batch_size"):
        pipe.input("a").map("a", "b", abs, config={"batch_size": 0})
    with pytest.raises(SchemaError, match="callable"):
        pipe.input("a").map("a", "b", 3)  # type: ignore[arg-type]


def test_wrong_number_of_inputs_is_an_error() -> None:
    from pipelines import PipelineError

    p = pipe.input("a", "b").output("a")
    with pytest.raises(PipelineError, match="takes 2 input"):
        p(1)
    with pytest.raises(PipelineError, match="takes 2 input"):
        list(p.stream([1]))


def test_builder_is_immutable_and_branches_are_independent() -> None:
    base = pipe.input("a").map("a", "b", lambda x: x + 1)
    left = base.map("b", "c", lambda x: x * 2).output("c")
    right = base.map("b", "c", lambda x: -x).output("c")
    assert left(1).to_list() == [[4]]
    assert right(1).to_list() == [[-2]]


def test_towhee_unknown_config_keys_are_ignored() -> None:
    p = pipe.input("a").map("a", "b", abs, config={"device": 0, "name": "absolute"}).output("b")
    assert p(-3).to_list() == [[3]]
