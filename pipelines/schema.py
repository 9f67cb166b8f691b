"""Pipeline definitions as data: column schemas, node configs and node specs."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pipelines.errors import SchemaError
from pipelines.registry import OperatorHandle

NodeKind = Literal["map", "flat_map", "filter", "window", "window_all"]
Schema = tuple[str, ...]
SchemaLike = str | Sequence[str]

_COLUMN = re.compile(r"^[a-zA-Z_][a-zA-Z_0-9]*$")
DEFAULT_QUEUE_SIZE = 512


def as_schema(cols: SchemaLike, what: str = "schema") -> Schema:
    """Normalise a column name or sequence of names to a tuple, checking towhee's naming rule."""
    names = (cols,) if isinstance(cols, str) else tuple(cols)
    for name in names:
        if not isinstance(name, str) or _COLUMN.match(name) is None:
            raise SchemaError(
                f"{what}: column names are letters, digits and underscores, got {name!r}"
            )
    return names


def _positive_int(config: Mapping[str, Any], key: str, default: int | None) -> int | None:
    value = config.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SchemaError(f"config[{key!r}] must be a positive int, not {value!r}")
    return value


@dataclass(frozen=True)
class NodeConfig:
    """Engine options of one node; unknown keys (towhee's device, acc_info, ...) are ignored."""

    batch_size: int | None = None
    workers: int = 1
    queue_size: int = DEFAULT_QUEUE_SIZE
    name: str | None = None

    @classmethod
    def parse(cls, config: Any) -> NodeConfig:
        """Build from ``None``, a dict, or an object with a dict ``.config`` (towhee AutoConfig)."""
        if config is None:
            return cls()
        if not isinstance(config, Mapping):
            config = getattr(config, "config", None)
            if not isinstance(config, Mapping):
                raise SchemaError(f"config must be a dict, not {type(config).__name__}")
        name = config.get("name")
        return cls(
            batch_size=_positive_int(config, "batch_size", None),
            workers=_positive_int(config, "workers", 1) or 1,
            queue_size=_positive_int(config, "queue_size", DEFAULT_QUEUE_SIZE)
            or DEFAULT_QUEUE_SIZE,
            name=str(name) if name is not None else None,
        )


def operator_name(fn: Callable[..., Any]) -> str:
    """Registered name of an ``ops`` handle, else the callable's qualified name."""
    if isinstance(fn, OperatorHandle):
        return fn.name
    qualname = getattr(fn, "__qualname__", None)
    if qualname is None:
        qualname = getattr(type(fn), "__qualname__", type(fn).__name__)
    module = getattr(fn, "__module__", None) or type(fn).__module__
    return f"{module}.{qualname}" if module and module != "builtins" else str(qualname)


@dataclass(frozen=True)
class NodeSpec:
    """One step of a pipeline, as the user declared it."""

    kind: NodeKind
    inputs: Schema
    outputs: Schema
    fn: Callable[..., Any]
    config: NodeConfig
    filter_by: Schema = ()
    size: int = 0
    step: int = 0

    @property
    def reads(self) -> Schema:
        """Every column the node reads (a filter also reads its filter columns)."""
        return self.inputs + tuple(c for c in self.filter_by if c not in self.inputs)

    @property
    def op_name(self) -> str:
        """The operator's name in error messages: config name, registered name or qualname."""
        return self.config.name or operator_name(self.fn)

    def describe(self, index: int) -> str:
        """Short position-and-shape label, e.g. ``map #2 ('a',) -> ('b',)``."""
        return f"{self.kind} #{index} {self.inputs} -> {self.outputs}"
