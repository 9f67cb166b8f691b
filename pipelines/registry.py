"""Local operator registry: ``@register(name=...)`` and towhee-style ``ops.<ns>.<name>(...)``."""

from __future__ import annotations

import functools
import importlib
import importlib.util
import threading
from collections.abc import Callable
from typing import Any, TypeVar, overload

from pipelines.errors import UnknownOperatorError

T = TypeVar("T")

BUILTIN_PACKAGE = "pipelines.operators"
DEFAULT_NAMESPACE = "anon"
TOWHEE_NAMESPACE = "towhee"  # where towhee looks up a name without a namespace

_REGISTRY: dict[str, Any] = {}
_LOCK = threading.RLock()
_builtins_state = {"loaded": False, "loading": False}


def normalize_name(name: str) -> str:
    """towhee's registration name: ``ns/name`` with ``_``→``-``; no namespace means ``anon``."""
    if not name or name.count("/") > 1:
        raise ValueError(f"operator name must be 'name' or 'namespace/name', not {name!r}")
    namespace, _, repo = name.rpartition("/")
    namespace = (namespace or DEFAULT_NAMESPACE).replace("_", "-")
    return f"{namespace}/{repo.replace('_', '-')}"


def lookup_name(dotted: str) -> str:
    """towhee's lookup name for ``ops.a_b.c_d``: ``.``→``/`` and ``_``→``-`` (``a-b/c-d``)."""
    return dotted.replace(".", "/").replace("_", "-")


@overload
def register(name: Callable[..., Any]) -> Any: ...


@overload
def register(
    name: str | None = None,
    input_schema: Any = None,
    output_schema: Any = None,
    flag: Any = None,
) -> Callable[[T], T]: ...


def register(
    name: str | Callable[..., Any] | None = None,
    input_schema: Any = None,
    output_schema: Any = None,
    flag: Any = None,
) -> Any:
    """Register a class or function as an operator; usable bare (``@register``) or with a name.

    The decorated object is returned unchanged. ``input_schema``/``output_schema``/``flag`` are
    accepted for towhee compatibility and ignored. Re-registering a name replaces it, except that
    built-in operators never replace a name the user registered first.
    """
    del input_schema, output_schema, flag
    if callable(name):
        return register()(name)

    def wrapper(target: T) -> T:
        if not callable(target):
            raise TypeError(f"can only register a class or a callable, not {target!r}")
        key = normalize_name(name if name is not None else getattr(target, "__name__", ""))
        with _LOCK:
            if _builtins_state["loading"]:
                _REGISTRY.setdefault(key, target)
            else:
                _REGISTRY[key] = target
        return target

    return wrapper


def unregister(name: str) -> None:
    """Remove a registered operator (by registration or lookup name); missing names are ignored."""
    with _LOCK:
        for key in _candidates(name):
            _REGISTRY.pop(key, None)


def _load_builtins() -> None:
    """Import ``pipelines.operators`` once so built-in operators are registered before lookups."""
    with _LOCK:
        if _builtins_state["loaded"] or _builtins_state["loading"]:
            return
        _builtins_state["loading"] = True
        try:
            if importlib.util.find_spec(BUILTIN_PACKAGE) is not None:
                importlib.import_module(BUILTIN_PACKAGE)
            _builtins_state["loaded"] = True
        finally:
            _builtins_state["loading"] = False


def _candidates(name: str) -> list[str]:
    """Names tried for a lookup, in order; a bare name also tries towhee's own namespace."""
    name = name.replace("_", "-")
    names = [name, f"{DEFAULT_NAMESPACE}/{name}", f"builtin/{name}"]
    if "/" not in name:
        names.append(f"{TOWHEE_NAMESPACE}/{name}")
    return names


def _entry(name: str) -> tuple[str, Any] | None:
    """(registered name, target); built-ins are imported on the first miss only."""
    for attempt in range(2):
        with _LOCK:
            for key in _candidates(name):
                if key in _REGISTRY:
                    return key, _REGISTRY[key]
        if attempt == 0 and not _builtins_state["loaded"]:
            _load_builtins()
        else:
            break
    return None


def resolve(name: str) -> Any | None:
    """The registered class/function for a lookup name (towhee order: exact, anon/, builtin/)."""
    entry = _entry(name)
    return None if entry is None else entry[1]


def get_operator(name: str) -> Any:
    """Like :func:`resolve` but raises :class:`UnknownOperatorError` listing the known names."""
    entry = _entry(name)
    if entry is None:
        raise unknown_operator(name)
    return entry[1]


def unknown_operator(name: str) -> UnknownOperatorError:
    """The error for a name nothing is registered under (a towhee hub name says what to use)."""
    from pipelines.towhee_hub import instead_of

    return UnknownOperatorError(name, list_operators(), instead_of(name))


def list_operators() -> list[str]:
    """Sorted names of every registered operator (built-ins included)."""
    _load_builtins()
    with _LOCK:
        return sorted(_REGISTRY)


class OperatorHandle:
    """What ``ops.ns.name(*args, **kwargs)`` returns: a named, lazily created operator instance."""

    def __init__(self, name: str, target: Any, args: tuple[Any, ...], kwargs: dict[str, Any]):
        self.name = name
        self.target = target
        self.init_args = args
        self.init_kws = kwargs
        self._op: Callable[..., Any] | None = None
        self._lock = threading.Lock()

    def get_op(self) -> Callable[..., Any]:
        """The operator callable: an instance of a registered class, or the (partial) function."""
        op = self._op
        if op is None:
            with self._lock:
                if self._op is None:
                    self._op = self._create()
                op = self._op
        return op

    preload_op = get_op

    def _create(self) -> Callable[..., Any]:
        if isinstance(self.target, type):
            return self.target(*self.init_args, **self.init_kws)
        if self.init_args or self.init_kws:
            return functools.partial(self.target, *self.init_args, **self.init_kws)
        return self.target

    def revision(self, tag: str = "main") -> OperatorHandle:
        """towhee compatibility: local operators have no revisions, so this is a no-op."""
        del tag
        return self

    def latest(self) -> OperatorHandle:
        """towhee compatibility: local operators are always current, so this is a no-op."""
        return self

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the operator directly (instantiating it on first use)."""
        return self.get_op()(*args, **kwargs)

    def __getattr__(self, attr: str) -> Any:
        """Delegate public attributes (e.g. ``flush``) to the operator instance."""
        if attr.startswith("_"):
            raise AttributeError(attr)
        return getattr(self.get_op(), attr)

    def __repr__(self) -> str:
        return f"ops[{self.name!r}]"


class _OpsPath:
    """One step of ``ops.a.b``: attribute access extends the dotted path, a call resolves it."""

    def __init__(self, path: str) -> None:
        self._path = path

    def __getattr__(self, attr: str) -> _OpsPath:
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _OpsPath(f"{self._path}.{attr}")

    def __call__(self, *args: Any, **kwargs: Any) -> OperatorHandle:
        name = lookup_name(self._path)
        entry = _entry(name)
        if entry is None:
            raise unknown_operator(name)
        return OperatorHandle(entry[0], entry[1], args, kwargs)

    def __repr__(self) -> str:
        return f"ops.{self._path}"


class _Ops:
    """``ops``: ``ops.image_decode.cv2_rgb(**kw)`` finds the operator ``image-decode/cv2-rgb``."""

    def __getattr__(self, attr: str) -> _OpsPath:
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _OpsPath(attr)


ops = _Ops()
