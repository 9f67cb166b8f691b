"""build_components(settings): the one place where settings become live objects."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Literal

from retrieval.config import Settings
from retrieval.embedders import create_embedder_from_settings
from retrieval.embedders.base import Embedder
from retrieval.errors import ModelNotFoundError, StoreError
from retrieval.model_spec import same_spec, spec_flags
from retrieval.stores import is_local_uri, open_store
from retrieval.stores.base import VectorStore
from retrieval.stores.existing import open_existing_store
from retrieval.stores.milvus_rows import lite_path
from retrieval.stores.pending import PendingLiteStore

# How a process opens its collection: "create" (writers: ingest, reindex) creates a missing
# Lite file; "read" (search, ask, eval) opens only an existing collection with items and says
# what is missing; "open" (the API) creates nothing and fails only when a call needs the data.
StoreAccess = Literal["create", "read", "open"]


@dataclass
class Components:
    """The embedder and store one process uses; the model loads on first use."""

    settings: Settings
    store: VectorStore
    _embedder: Embedder | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def embedder(self) -> Embedder:
        """The configured embedder, loaded once (thread-safe).

        When it cannot be loaded and the collection records a model, the error says that model
        (and the flags that select it) first.
        """
        with self._lock:
            if self._embedder is None:
                try:
                    self._embedder = create_embedder_from_settings(self.settings)
                except ModelNotFoundError as exc:
                    note = recorded_model_note(self.settings, self.store)
                    if not note:
                        raise
                    raise ModelNotFoundError(f"{note} {exc}") from exc
            return self._embedder

    @property
    def embedder_loaded(self) -> bool:
        """Whether the model has been loaded yet."""
        return self._embedder is not None

    def close(self) -> None:
        """Release the store connection."""
        self.store.close()


def recorded_model_note(settings: Settings, store: VectorStore) -> str:
    """What the collection records about its model, for an error about the configured model
    ('' when the collection or its record cannot be read)."""
    try:
        target = store.describe_target()
    except StoreError:
        return ""
    name = settings.collection
    flags = spec_flags(target.spec)
    if not flags:
        return (
            f"Collection {name!r} at {store.where} holds vectors of {target.model_id} "
            f"(no model spec recorded)."
        )
    if same_spec(settings, target.spec):
        return (
            f"Collection {name!r} at {store.where} was built with this model "
            f"({target.model_id}: {flags}), so its weights are needed."
        )
    return (
        f"Collection {name!r} at {store.where} was built with {target.model_id}: read it with "
        f"{flags}, not the configured model {settings.model!r}."
    )


def build_components(settings: Settings, access: StoreAccess = "create") -> Components:
    """Wire the store (chosen by URI, opened as ``access`` says) and a lazily loaded embedder."""
    if access == "read":
        store = open_existing_store(
            settings.uri, settings.collection, token=settings.token,
            index_type=settings.index_type, require_items=True,
        )
    elif access == "open" and is_local_uri(settings.uri) and not lite_path(settings.uri).is_file():
        store = PendingLiteStore(
            settings.collection, str(lite_path(settings.uri)), lambda: _open(settings, False)
        )
    else:
        store = _open(settings, access == "create")
    return Components(settings=settings, store=store)


def _open(settings: Settings, create: bool) -> VectorStore:
    """The configured collection's store (``create``: a missing Lite file is created)."""
    return open_store(
        settings.uri,
        settings.collection,
        token=settings.token,
        index_type=settings.index_type,
        create=create,
    )
