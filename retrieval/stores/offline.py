"""A stand-in for a store that could not be opened: every call says the store is unavailable."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from retrieval.errors import StoreUnavailableError
from retrieval.stores.base import Capabilities, VectorStore
from retrieval.types import Record


class OfflineStore(VectorStore):
    """Stands in for a store that could not be opened: every call is StoreUnavailableError."""

    def __init__(self, collection: str, message: str) -> None:
        self.collection = collection
        self.message = message
        self.where = "an unreachable store"

    def _down(self, *args: Any, **kwargs: Any) -> Any:
        raise StoreUnavailableError(self.message)

    ensure_collection = exists = info = upsert = flush = existing_ids = _down
    search = range_search = get = delete = delete_where = count = drop = list_collections = _down
    wait_until_indexed = describe_target = model_spec = resolve = refresh = _down
    set_alias = describe_alias = drop_alias = list_aliases = rename = _down
    has_text_index = text_columns = keyword_search = hybrid_search = _down

    @property
    def capabilities(self) -> Capabilities:
        """Unknown until the store can be reached: unavailable."""
        raise StoreUnavailableError(self.message)

    def iterate(
        self, batch_size: int = 1000, *, with_vectors: bool = True
    ) -> Iterator[list[Record]]:
        """Unavailable."""
        raise StoreUnavailableError(self.message)

    def iterate_where(
        self, expr: str, batch_size: int = 1000, *, with_vectors: bool = False
    ) -> Iterator[list[Record]]:
        """Unavailable."""
        raise StoreUnavailableError(self.message)

    def close(self) -> None:
        """Nothing to release."""
