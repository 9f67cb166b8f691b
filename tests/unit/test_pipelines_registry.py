"""pipelines.registry: towhee's naming rules for register/ops, handles and lookup errors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from pipelines import (
    OperatorHandle,
    PipelineError,
    UnknownOperatorError,
    list_operators,
    ops,
    pipe,
    register,
    resolve,
    unregister,
)
from pipelines.registry import lookup_name, normalize_name


@pytest.fixture
def cleanup() -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    for name in names:
        unregister(name)


def test_names_follow_towhee() -> None:
    assert normalize_name("image_decode/cv2_rgb") == "image-decode/cv2-rgb"
    assert normalize_name("my_op") == "anon/my-op"
    assert lookup_name("image_decode.cv2_rgb") == "image-decode/cv2-rgb"
    with pytest.raises(ValueError, match="namespace/name"):
        normalize_name("a/b/c")


def test_registered_class_is_instantiated_with_kwargs(cleanup: list[str]) -> None:
    @register(name="test_ns/scale_by")
    class ScaleBy:
        def __init__(self, factor: int = 2) -> None:
            self.factor = factor

        def __call__(self, x: int) -> int:
            return x * self.factor

    cleanup.append("test-ns/scale-by")
    assert isinstance(ScaleBy, type)  # the decorator returns the class unchanged
    handle = ops.test_ns.scale_by(factor=3)
    assert isinstance(handle, OperatorHandle)
    assert handle.name == "test-ns/scale-by"
    assert handle(5) == 15
    assert isinstance(handle.get_op(), ScaleBy)
    assert handle.factor == 3  # public attributes delegate to the instance
    assert handle.revision("v1").latest() is handle
    assert "test-ns/scale-by" in list_operators()
    p = pipe.input("x").map("x", "y", ops.test_ns.scale_by(factor=10)).output("y")
    assert p(4).to_list() == [[40]]


def test_registered_function_is_returned_or_partially_applied(cleanup: list[str]) -> None:
    @register(name="test-ns/add")
    def add(x: int, y: int = 1) -> int:
        return x + y

    cleanup.append("test-ns/add")
    assert add(1) == 2  # still a plain function
    assert ops.test_ns.add().get_op() is add
    assert ops.test_ns.add(y=10)(1) == 11
    assert resolve("test-ns/add") is add


def test_bare_register_uses_the_anon_namespace(cleanup: list[str]) -> None:
    @register
    def bare_test_op(x: Any) -> Any:
        return x

    cleanup.append("anon/bare-test-op")
    assert resolve("anon/bare-test-op") is bare_test_op
    assert ops.bare_test_op()(5) == 5


def test_unknown_operator_lists_the_known_ones(cleanup: list[str]) -> None:
    register(name="test-ns/known")(lambda x: x)
    cleanup.append("test-ns/known")
    with pytest.raises(UnknownOperatorError) as info:
        ops.test_ns.does_not_exist()
    err = info.value
    assert isinstance(err, PipelineError) and isinstance(err, LookupError)
    assert "test-ns/does-not-exist" in str(err)
    assert "test-ns/known" in str(err)
    assert "test-ns/known" in err.known


def test_class_is_created_lazily_once_and_shared(cleanup: list[str]) -> None:
    created: list[int] = []

    @register(name="test-ns/counted")
    class Counted:
        def __init__(self) -> None:
            created.append(1)

        def __call__(self, x: int) -> int:
            return x

    cleanup.append("test-ns/counted")
    handle = ops.test_ns.counted()
    assert created == []
    p = pipe.input("x").map("x", "y", handle).output("y")
    assert created == [1]  # instantiated when the pipeline is closed, like towhee's preload
    assert p(1).to_list() == [[1]] and p(2).to_list() == [[2]]
    assert created == [1]


def test_reregistering_replaces(cleanup: list[str]) -> None:
    register(name="test-ns/twice")(lambda x: 1)
    register(name="test-ns/twice")(lambda x: 2)
    cleanup.append("test-ns/twice")
    assert ops.test_ns.twice()(0) == 2


def test_builtins_never_replace_user_registrations(
    cleanup: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipelines import registry

    register(name="test-ns/mine")(lambda x: "user")
    cleanup.append("test-ns/mine")
    monkeypatch.setitem(registry._builtins_state, "loading", True)
    register(name="test-ns/mine")(lambda x: "builtin")
    register(name="test-ns/builtin-only")(lambda x: "builtin")
    cleanup.append("test-ns/builtin-only")
    monkeypatch.setitem(registry._builtins_state, "loading", False)
    assert ops.test_ns.builtin_only()(0) == "builtin"
    assert ops.test_ns.mine()(0) == "user"
