"""ann_insert.milvus_client and ann_search.milvus_client over mmrag's Milvus store."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, cast

import numpy as np

from pipelines import register
from retrieval.embedders.tagged import EmbeddingModel, model_of
from retrieval.image_rows import ensure_collection_for, image_record
from retrieval.stores import open_store
from retrieval.types import Hit, Modality

log = logging.getLogger(__name__)

HIT_FIELDS = ("source", "caption", "modality", "metadata", "model_id")


@register(name="ann-insert/milvus-client")
class MilvusInsert:
    """Upsert (id, vector[, source, caption, metadata]) rows; list inputs are one batched call.

    The collection records the model that made the vectors (``image_text_embedding.clip``
    hands it on with them: id, width and spec), like the ingest job. ``model_id`` names the
    model only for vectors that carry none (made outside mmrag's operators).
    """

    def __init__(
        self, uri: str, collection: str, model_id: str = "", token: str | None = None
    ) -> None:
        self.store = open_store(uri, collection, token=token)
        self.model_id = model_id
        self.model: EmbeddingModel | None = None  # the model of the collection, once ensured

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
        return [1] * n if batched else 1

    def _model_of(self, vectors: Sequence[Any]) -> EmbeddingModel:
        """The one model the vectors carry; for plain vectors the collection's, else model_id."""
        carried = [model_of(v) for v in vectors]
        model = carried[0] if carried else None
        if any(other != model for other in carried):
            raise ValueError("vectors of one insert call come from different models")
        if model is not None:
            return model
        return self.model or EmbeddingModel(self.model_id, int(np.asarray(vectors[0]).shape[-1]))

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
