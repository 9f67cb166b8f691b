"""ann_insert.milvus_client and ann_search.milvus_client over mmrag's Milvus store."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from pipelines import register
from retrieval.stores import open_store
from retrieval.types import Hit, Modality, Record

HIT_FIELDS = ("source", "caption", "modality", "metadata", "model_id")


@register(name="ann-insert/milvus-client")
class MilvusInsert:
    """Upsert (id, vector[, source, caption, metadata]) rows; list inputs are one batched call."""

    def __init__(
        self, uri: str, collection: str, model_id: str = "", token: str | None = None
    ) -> None:
        self.store = open_store(uri, collection, token=token)
        self.model_id = model_id
        self._ready = False

    def __call__(
        self,
        id: str | list,
        vector: np.ndarray | list,
        source: str | list = "",
        caption: str | list = "",
        metadata: dict | list | None = None,
    ) -> int | list[int]:
        batched = isinstance(id, list)
        ids = id if isinstance(id, list) else [id]
        n = len(ids)
        vectors = vector if batched else [vector]
        sources = _column(source, n, batched, "")
        captions = _column(caption, n, batched, "")
        metas = _column(metadata, n, batched, None)
        if not self._ready:
            self.store.ensure_collection(int(np.asarray(vectors[0]).shape[-1]), self.model_id)
            self._ready = True
        records = [
            Record(
                id=str(i),
                vector=np.asarray(v, dtype=np.float32),
                source=str(s),
                caption=str(c),
                modality=Modality.IMAGE,
                metadata=m or {},
                model_id=self.model_id,
            )
            for i, v, s, c, m in zip(ids, vectors, sources, captions, metas, strict=True)
        ]
        self.store.upsert(records)
        return [1] * n if batched else 1

    def flush(self) -> None:
        """Make inserted rows durable and searchable."""
        self.store.flush()


def _column(value: Any, n: int, batched: bool, default: Any) -> Sequence[Any]:
    if batched and isinstance(value, list):
        return value
    return [value if value is not None else default] * n


@register(name="ann-search/milvus-client")
class MilvusSearch:
    """Search by a query vector; returns [id, score, *output_fields] rows like towhee's."""

    def __init__(
        self,
        uri: str,
        collection: str,
        limit: int = 10,
        filter: str | None = None,
        output_fields: Sequence[str] = ("source", "caption"),
        token: str | None = None,
    ) -> None:
        unknown = [f for f in output_fields if f not in HIT_FIELDS]
        if unknown:
            raise ValueError(f"unknown output_fields {unknown}; choose from {list(HIT_FIELDS)}")
        self.store = open_store(uri, collection, token=token)
        self.limit = limit
        self.expr = filter
        self.output_fields = tuple(output_fields)

    def __call__(self, vector: np.ndarray | list) -> list[list[Any]] | list[list[list[Any]]]:
        batched = isinstance(vector, list)
        vectors = vector if batched else [vector]
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
