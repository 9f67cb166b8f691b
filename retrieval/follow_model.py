"""Which model reads a collection: the configured one, or the one a moved name now records.

One rule for every reader (the API at startup, ``mmrag search``, ``ask``, ``eval``): explicit
configuration wins for a plain collection; only a MOVED name is followed. The reader loads the
model a collection records (``retrieval.model_spec``) instead of the configured one only when

* the configured collection name resolves (a server alias, a Milvus Lite pointer file) to another
  concrete collection -- what ``mmrag reindex`` does to it,
* that concrete collection records a model spec, and
* the spec differs from the settings.

A plain collection is read with the configured model, and a collection built with another model
is refused (the API's 409, the CLI's ``ModelMismatchError``). When the recorded model of a moved
name cannot be loaded, the configured model is used only if it is the same model (same model id,
e.g. the checkpoint was moved), with a warning; otherwise the reader fails with an error saying
so. Queries are never silently compared with vectors of another model.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from retrieval.components import Components
from retrieval.config import Settings
from retrieval.embedders.base import Embedder
from retrieval.errors import CollectionNotFoundError, MmragError, ModelMismatchError
from retrieval.model_spec import embedder_for_spec, same_spec, spec_flags
from retrieval.search import Searcher
from retrieval.stores.base import Target, VectorStore

log = logging.getLogger(__name__)

__all__ = [
    "check_query_model",
    "followed_embedder",
    "is_moved",
    "query_embedder",
    "read_target",
    "should_follow",
    "spec_flags",
]


def read_target(store: VectorStore) -> Target | None:
    """Where the store's configured name points now (blocking); None when it names nothing."""
    try:
        return store.describe_target()
    except CollectionNotFoundError:
        return None


def is_moved(name: str, target: Target | None) -> bool:
    """Whether the name resolves to another concrete collection (an alias or Lite pointer)."""
    return target is not None and target.collection != name


def should_follow(settings: Settings, target: Target | None, name: str | None = None) -> bool:
    """Whether to load the target's recorded model instead of the configured one (the rule)."""
    configured = name if name is not None else settings.collection
    return (
        target is not None
        and is_moved(configured, target)
        and bool(target.spec)
        and not same_spec(settings, target.spec)
    )


def followed_embedder(
    settings: Settings,
    target: Target | None,
    *,
    name: str | None = None,
    configured: Callable[[], Embedder] | None = None,
) -> Embedder | None:
    """The model to query ``target`` with when the rule follows it; None: use the configured one.

    ``configured`` loads the configured model (default: from ``settings``); it is called only
    when the recorded model cannot be loaded, to check that it is the same model. Raises
    ``ModelMismatchError`` when it is not (or cannot be loaded either).
    """
    if target is None or target.spec is None or not should_follow(settings, target, name):
        return None
    configured_name = name if name is not None else settings.collection
    try:
        embedder = embedder_for_spec(settings, target.spec, target.model_id)
    except MmragError as exc:
        return _fallback(settings, target, configured_name, exc, configured)
    log.info(
        "collection %r now reads %r, built with %s: querying with that model, not the "
        "configured %s", configured_name, target.collection, target.model_id, settings.model,
    )
    return embedder


def _fallback(
    settings: Settings,
    target: Target,
    name: str,
    exc: MmragError,
    configured: Callable[[], Embedder] | None,
) -> Embedder:
    """The configured model when it is the model the target was built with; else a clear error."""
    where = (
        f"collection {name!r} now reads {target.collection!r}, built with {target.model_id!r} "
        f"(recorded as {spec_flags(target.spec)}), but that model cannot be loaded: {exc}"
    )
    if configured is None:
        from retrieval.embedders import create_embedder_from_settings

        def configured() -> Embedder:
            return create_embedder_from_settings(settings)

    try:
        mine = configured()
    except MmragError as mine_exc:
        raise ModelMismatchError(
            f"{where}; the configured model {settings.model!r} cannot be loaded either: {mine_exc}"
        ) from exc
    if mine.model_id == target.model_id:
        log.warning("%s; the configured model is the same model (%s): using it", where,
                    mine.model_id)
        return mine
    raise ModelMismatchError(
        f"{where}; the configured model is another one ({mine.model_id!r}), whose queries cannot "
        "search it. Make the recorded model loadable again, or set MMRAG_MODEL/MMRAG_PRETRAINED/"
        f"MMRAG_CHECKPOINT to that model, or `mmrag reindex --collection {name}` with the "
        "configured model"
    ) from exc


def query_embedder(components: Components) -> Embedder:
    """The (loaded) model a CLI reader queries the configured collection with, by the rule."""
    target = read_target(components.store)
    followed = followed_embedder(
        components.settings, target, configured=lambda: components.embedder
    )
    return followed if followed is not None else components.embedder


def check_query_model(searcher: Searcher) -> None:
    """``Searcher.check_model``, its error naming how to load the collection's recorded model."""
    try:
        searcher.check_model()
    except ModelMismatchError as exc:
        target = read_target(searcher.store)
        flags = spec_flags(target.spec) if target is not None else ""
        if not flags:
            raise
        raise ModelMismatchError(f"{exc} (the collection records: {flags})") from exc
