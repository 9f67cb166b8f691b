"""mmrag's operator-pipeline engine: towhee's ``pipe``/``ops``/``register`` API, run locally.

``from pipelines import pipe, ops, DataCollection`` reads like towhee code; pipelines stream rows
through bounded queues between threads, support batched and multi-worker maps, and raise
operator failures as :class:`OperatorError`.
"""

from pipelines.datacollection import DataCollection, Entity
from pipelines.errors import OperatorError, PipelineError, SchemaError, UnknownOperatorError
from pipelines.pipe import Pipeline, RuntimePipeline, pipe
from pipelines.registry import (
    OperatorHandle,
    get_operator,
    list_operators,
    ops,
    register,
    resolve,
    unregister,
)
from pipelines.results import ColumnType, ListResult
from pipelines.runtime import Result

__all__ = [
    "ColumnType",
    "DataCollection",
    "Entity",
    "ListResult",
    "OperatorError",
    "OperatorHandle",
    "Pipeline",
    "PipelineError",
    "Result",
    "RuntimePipeline",
    "SchemaError",
    "UnknownOperatorError",
    "get_operator",
    "list_operators",
    "ops",
    "pipe",
    "register",
    "resolve",
    "unregister",
]
