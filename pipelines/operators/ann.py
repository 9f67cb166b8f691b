"""ann_insert.milvus_client and ann_search.milvus_client, towhee's Milvus operators.

They take towhee's arguments (``host``, ``port``, ``collection_name``, ``user``, ``password``,
``limit``, ``output_fields``) or mmrag's (``uri``, ``collection``, ``token``). A collection the
user created with pymilvus is used by its own schema (``user_collection``); a collection mmrag
created, or one that does not exist yet, goes through mmrag's store, recording the model the
vectors carry as the ingest job does. Rows a pipeline call inserted are flushed when the call
ends, so pymilvus's ``num_entities`` counts them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, cast

import numpy as np

from pipelines import register
from pipelines.operators.milvus_target import MilvusTarget, made_by_mmrag, milvus_target
from pipelines.operators.user_collection import UserCollection, read_schema
from retrieval.embedders.tagged import EmbeddingModel, model_of
from retrieval.errors import ConfigError
from retrieval.image_rows import ensure_collection_for, image_record
from retrieval.stores import open_store
from retrieval.stores.base import VectorStore
from retrieval.types import Hit, Modality

log = logging.getLogger(__name__)

HIT_FIELDS = ("source", "caption", "modality", "metadata", "model_id")


def open_collection(target: MilvusTarget) -> tuple[Any, UserCollection | None]:
    """(client, the user's collection) or (client, None) for mmrag's or a missing collection."""
    client = target.connect()
    if not client.has_collection(target.collection):
        return client, None
    desc = client.describe_collection(target.collection)
    if made_by_mmrag(desc):
        return client, None
    return client, UserCollection(client, read_schema(target.collection, desc))


@register(name="ann-insert/milvus-client")
class MilvusInsert:
    """Insert rows: into the user's collection by its schema, else as mmrag image rows.

    On mmrag's collections a call is ``(id, vector[, source, caption, metadata])``; the
    collection records the model the vectors carry (``image_text_embedding.clip`` hands it on),
    and ``model_id`` names the model only for vectors that carry none.
    """

    def __init__(
        self,
        host: str | None = None,
        port: int | str | None = None,
        collection_name: str | None = None,
        user: str | None = None,
        password: str | None = None,
        *,
        uri: str | None = None,
        collection: str | None = None,
        token: str | None = None,
        model_id: str = "",
    ) -> None:
        self.target = milvus_target(
            host=host, port=port, uri=uri, collection_name=collection_name,
            collection=collection, user=user, password=password, token=token,
        )
        self._client, self.user_collection = open_collection(self.target)
        self.store: VectorStore | None = None
        if self.user_collection is None:
            self.store = _open_store(self.target)
        self.model_id = model_id
        self.model: EmbeddingModel | None = None  # the model of mmrag's collection, once ensured
        self._unflushed = False

    def __call__(self, *values: Any, **named: Any) -> Any:
        if self.user_collection is not None:
            if named:
                raise ConfigError(
                    "the user's collection takes its values in schema order, not by name"
                )
            result = self._insert_user(values)
        else:
            result = self._insert_mmrag(*values, **named)
        self._unflushed = True
        return result

    def _insert_user(self, values: Sequence[Any]) -> Any:
        assert self.user_collection is not None
        result = self.user_collection.insert(values)
        vector_at = self.user_collection.schema.insert_fields.index(
            self.user_collection.schema.vector
        )
        vectors = values[vector_at]
        if isinstance(vectors, list) and (not vectors or not np.isscalar(vectors[0])):
            ids = list(result.get("ids", []))
            return [{"insert_count": 1, "ids": [i]} for i in ids]  # one result per batched row
        return result

    def _insert_mmrag(
        self,
        id: str | list,
        vector: np.ndarray | list,
        source: str | list = "",
        caption: str | list = "",
        metadata: dict | list | None = None,
    ) -> dict[str, Any] | list[dict[str, Any]]:
        assert self.store is not None
        batched = isinstance(id, list)
        ids = id if isinstance(id, list) else [id]
        n = len(ids)
        vectors = cast(Sequence[Any], vector if batched else [vector])
        sources = _column(source, n, batched, "")
        captions = _column(caption, n, batched, "")
        metas = _column(metadata, n, batched, None)
        model = self._model_of(vectors)
        if self.model is None:
            if self.model_id and self.model_id != model.model_id:
                log.warning(
                    "ann_insert: recording %s, the model that made the vectors, not model_id=%r",
                    model.model_id, self.model_id,
                )
            ensure_collection_for(self.store, model)
            self.model = model
        elif model.model_id != self.model.model_id:
            raise ValueError(
                f"vectors come from {model.model_id}, but this collection holds "
                f"{self.model.model_id}"
            )
        records = [
            image_record(str(i), v, model, source=str(s), caption=str(c), metadata=m)
            for i, v, s, c, m in zip(ids, vectors, sources, captions, metas, strict=True)
        ]
        self.store.upsert(records)
        if batched:
            return [{"insert_count": 1, "ids": [r.id]} for r in records]
        return {"insert_count": 1, "ids": [records[0].id]}

    def _model_of(self, vectors: Sequence[Any]) -> EmbeddingModel:
        """The one model the vectors carry; for plain vectors the collection's, else model_id."""
        carried = [model_of(v) for v in vectors]
        model = carried[0] if carried else None
        if any(other != model for other in carried):
            raise ValueError("vectors of one insert call come from different models")
        if model is not None:
            return model
        if self.model is not None:
            return self.model
        if not self.model_id:
            raise ConfigError(
                "these vectors carry no model (they were not made by "
                "ops.image_text_embedding.clip): pass model_id='...' naming the model that "
                "made them, or embed with the clip operator"
            )
        return EmbeddingModel(self.model_id, int(np.asarray(vectors[0]).shape[-1]))

    def end_of_call(self) -> None:
        """At the end of a pipeline call, flush what it inserted (``num_entities`` counts it)."""
        if self._unflushed:
            self.flush()

    def flush(self) -> None:
        """Make inserted rows durable and searchable."""
        if self.user_collection is not None:
            self.user_collection.flush()
        elif self.store is not None:
            self.store.flush()
        self._unflushed = False


def _column(value: Any, n: int, batched: bool, default: Any) -> Sequence[Any]:
    if batched and isinstance(value, list):
        return value
    return [value if value is not None else default] * n


@register(name="ann-search/milvus-client")
class MilvusSearch:
    """Search by a query vector; returns ``[id, score, *output_fields]`` rows like towhee's."""

    def __init__(
        self,
        host: str | None = None,
        port: int | str | None = None,
        collection_name: str | None = None,
        user: str | None = None,
        password: str | None = None,
        *,
        uri: str | None = None,
        collection: str | None = None,
        token: str | None = None,
        limit: int = 10,
        output_fields: Sequence[str] | None = None,
        filter: str | None = None,
        expr: str | None = None,
        param: dict[str, Any] | None = None,
        search_params: dict[str, Any] | None = None,
    ) -> None:
        self.target = milvus_target(
            host=host, port=port, uri=uri, collection_name=collection_name,
            collection=collection, user=user, password=password, token=token,
        )
        if filter and expr and filter != expr:
            raise ConfigError("pass filter= or expr= (they are one), not both")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigError(f"limit must be a positive int, not {limit!r}")
        self.limit = limit
        self.expr = filter or expr
        self.params = _search_params(param, search_params)
        self._client, self.user_collection = open_collection(self.target)
        self.store: VectorStore | None = None
        if self.user_collection is not None:
            self.output_fields = tuple(output_fields or ())
            self.user_collection.check_fields(self.output_fields)
        else:
            default = ("source", "caption")
            self.output_fields = tuple(default if output_fields is None else output_fields)
            unknown = [f for f in self.output_fields if f not in HIT_FIELDS]
            if unknown:
                raise ConfigError(
                    f"unknown output_fields {unknown}; mmrag's collections have "
                    f"{list(HIT_FIELDS)}"
                )
            self.store = _open_store(self.target)

    def __call__(self, vector: np.ndarray | list) -> list[list[Any]] | list[list[list[Any]]]:
        batched = isinstance(vector, list) and bool(vector) and not np.isscalar(vector[0])
        vectors = cast(list[Any], vector) if batched else [vector]
        if self.user_collection is not None:
            rows = self.user_collection.search(
                vectors, self.limit, self.output_fields, self.expr, self.params
            )
        else:
            assert self.store is not None
            queries = np.stack([np.asarray(v, dtype=np.float32) for v in vectors])
            results = self.store.search(queries, self.limit, expr=self.expr)
            rows = [[self._row(hit) for hit in hits] for hits in results]
        return rows if batched else rows[0]

    def _row(self, hit: Hit) -> list[Any]:
        values: list[Any] = [hit.id, hit.score]
        for name in self.output_fields:
            value = getattr(hit, name)
            values.append(value.value if isinstance(value, Modality) else value)
        return values


def _open_store(target: MilvusTarget) -> VectorStore:
    """mmrag's store for the target's collection."""
    return open_store(target.uri, target.collection, token=target.token)


def _search_params(
    param: dict[str, Any] | None, search_params: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The index's search params from towhee's ``param={'params': {...}}`` or a plain dict."""
    given = param if param is not None else search_params
    if given is None:
        return None
    inner = given.get("params", given)
    return dict(inner) if isinstance(inner, dict) else None
