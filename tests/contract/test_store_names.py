"""The name operations of the VectorStore contract (targets, aliases, refresh, model spec),
typed against the interface and run on Milvus Lite and the embedded server alike."""

from __future__ import annotations

import inspect
import time

import pytest

from retrieval.errors import ConfigError, StoreUnavailableError
from retrieval.stores.base import Target, VectorStore
from retrieval.stores.offline import OfflineStore
from tests.contract.helpers import DIM, MODEL, StoreFactory, make_records

OTHER = "test/model-b"
SPEC = {"model": "ViT-B-32", "pretrained": None, "checkpoint": "/models/b.safetensors"}


def test_capabilities_say_which_backend(store_factory: StoreFactory, backend: str) -> None:
    caps = store_factory().capabilities
    assert caps.embedded == (backend == "lite")
    assert caps.alias_shadows_collection == (backend == "lite")


def test_describe_target_follows_the_name_while_the_store_stays(
    store_factory: StoreFactory,
) -> None:
    suffix = time.monotonic_ns()
    old, new = store_factory(f"a_{suffix}"), store_factory(f"b_{suffix}")
    old.ensure_collection(DIM, MODEL)
    new.ensure_collection(8, OTHER, spec=SPEC)
    assert old.model_spec() is None and new.model_spec() == SPEC
    alias = f"name_{suffix}"
    old.set_alias(alias)
    reader: VectorStore = store_factory(alias)
    assert reader.describe_target() == Target(old.collection, MODEL, DIM, None)
    assert reader.resolve() == old.collection
    new.set_alias(alias)  # moves it
    assert reader.describe_target() == Target(new.collection, OTHER, 8, SPEC)
    assert reader.refresh() in (alias, new.collection)  # the name calls address now
    assert reader.resolve() == new.collection and reader.model_spec() == SPEC
    assert sorted(new.list_aliases()) == [alias] and old.list_aliases() == []
    assert new.drop_alias(alias) and new.describe_alias(alias) is None


def test_wait_until_indexed_after_flush(store: VectorStore) -> None:
    store.upsert(make_records(20))
    store.flush()
    assert store.wait_until_indexed(timeout=60)
    assert store.count() == 20


def test_rename_where_the_backend_can(store: VectorStore) -> None:
    if store.capabilities.alias_shadows_collection:  # Lite: aliases instead of renames
        with pytest.raises(ConfigError, match="rename"):
            store.rename(f"renamed_{time.monotonic_ns()}")
        return
    new_name = f"renamed_{time.monotonic_ns()}"
    store.rename(new_name)
    assert store.collection == new_name and store.resolve() == new_name


def test_offline_store_refuses_every_operation() -> None:
    store = OfflineStore("gallery", "Milvus at http://h:19530 is unavailable")
    operations = {
        name for name, member in inspect.getmembers(VectorStore)
        if getattr(member, "__isabstractmethod__", False)
    } - {"close"}
    for name in sorted(operations - {"capabilities", "iterate"}):
        with pytest.raises(StoreUnavailableError, match="unavailable"):
            getattr(store, name)("x")
    with pytest.raises(StoreUnavailableError):
        store.capabilities  # noqa: B018
    with pytest.raises(StoreUnavailableError):
        store.iterate()
    store.close()
