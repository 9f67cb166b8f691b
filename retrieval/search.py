"""Query -> vector -> hits: text-to-image and image-to-image search over one collection."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from retrieval.embedders.base import Embedder
from retrieval.errors import ModelMismatchError
from retrieval.stores.base import VectorStore
from retrieval.types import Hit


@dataclass(frozen=True)
class SearchRequest:
    """What to return: page size, page start, a safe filter expression and a score floor."""

    k: int = 10
    offset: int = 0
    expr: str | None = None
    min_score: float | None = None


class Searcher:
    """Embeds queries with the collection's own model and ranks stored items by similarity."""

    def __init__(self, embedder: Embedder, store: VectorStore) -> None:
        self.embedder = embedder
        self.store = store

    def check_model(self) -> None:
        """Refuse to query a collection built with another model (its vectors are incomparable)."""
        info = self.store.info()
        if info.model_id and info.model_id != self.embedder.model_id:
            raise ModelMismatchError(
                f"collection {info.name!r} was built with {info.model_id!r} but the query model "
                f"is {self.embedder.model_id!r}; set MMRAG_MODEL/MMRAG_PRETRAINED/"
                "MMRAG_CHECKPOINT to the collection's model or reindex it"
            )

    def search_text(self, query: str, request: SearchRequest | None = None) -> list[Hit]:
        """Hits for one text query."""
        return self.search_vector(self.embedder.embed_texts([query])[0], request)

    def search_image(self, rgb: np.ndarray, request: SearchRequest | None = None) -> list[Hit]:
        """Hits for one RGB uint8 query image."""
        return self.search_vector(self.embedder.embed_images([rgb])[0], request)

    def search_vector(self, vector: np.ndarray, request: SearchRequest | None = None) -> list[Hit]:
        """Hits for one unit query vector."""
        req = request or SearchRequest()
        hits = self.store.search(
            np.asarray(vector, dtype=np.float32)[None, :], req.k, offset=req.offset, expr=req.expr
        )[0]
        if req.min_score is not None:
            hits = [h for h in hits if h.score >= req.min_score]
        return hits
