"""build_components(settings): the one place where settings become live objects."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from retrieval.config import Settings
from retrieval.embedders import create_embedder_from_settings
from retrieval.embedders.base import Embedder
from retrieval.stores import open_store
from retrieval.stores.base import VectorStore


@dataclass
class Components:
    """The embedder and store one process uses; the model loads on first use."""

    settings: Settings
    store: VectorStore
    _embedder: Embedder | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def embedder(self) -> Embedder:
        """The configured embedder, loaded once (thread-safe)."""
        with self._lock:
            if self._embedder is None:
                self._embedder = create_embedder_from_settings(self.settings)
            return self._embedder

    @property
    def embedder_loaded(self) -> bool:
        """Whether the model has been loaded yet."""
        return self._embedder is not None

    def close(self) -> None:
        """Release the store connection."""
        self.store.close()


def build_components(settings: Settings) -> Components:
    """Wire the store (chosen by URI) and a lazily loaded embedder from settings."""
    store = open_store(
        settings.uri,
        settings.collection,
        token=settings.token,
        index_type=settings.index_type,
    )
    return Components(settings=settings, store=store)
