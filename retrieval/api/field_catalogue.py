"""The fields of each collection, sampled once and cached: the filter check and GET /fields.

One sample per collection (``retrieval.fields.sample_fields``) answers both, so they never
disagree. A filter check takes the cached sample while it is under ``KEYS_TTL_S`` old and knows
every key the filter names; an unknown key samples again, but not within ``KEYS_MIN_REFRESH_S``
of the last sample. ``GET /fields`` shows a sample at most ``FIELDS_TTL_S`` old. Both bounds keep
a field that any writer (an ingest through this server, another process on a Milvus server)
has just added visible within 2 s; a sample costs one scan of up to ``SAMPLE_ROWS`` rows without
vectors, taken at most once per bound however many requests ask.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from retrieval.api.store_gateway import StoreGateway
from retrieval.fields import FieldSample, sample_fields

KEYS_TTL_S = 300.0
KEYS_MIN_REFRESH_S = 1.0  # a filter naming a field added a moment ago is checked again after this
FIELDS_TTL_S = 1.5  # GET /fields shows a sample at most this old


@dataclass(frozen=True)
class _Entry:
    """A collection's sample and when it was taken."""

    sample: FieldSample
    at: float

    @property
    def age(self) -> float:
        return time.monotonic() - self.at


class FieldCatalogue:
    """Sampled fields per collection, one cache for every reader."""

    def __init__(self, stores: StoreGateway) -> None:
        self.stores = stores
        self._entries: dict[str, _Entry] = {}
        self._lock = asyncio.Lock()

    async def fields(self, collection: str | None) -> FieldSample:
        """The collection's fields, sampled at most ``FIELDS_TTL_S`` ago."""
        return await self._sample(collection, lambda entry: entry.age < FIELDS_TTL_S)

    async def metadata_keys(self, collection: str | None, wanted: Iterable[str]) -> frozenset[str]:
        """Metadata keys known in a collection (sampled, cached; sampled again on a miss)."""
        wanted = set(wanted)

        def answers(entry: _Entry) -> bool:
            age = entry.age
            known = wanted <= entry.sample.metadata_keys
            return (age < KEYS_TTL_S and known) or age < KEYS_MIN_REFRESH_S

        return (await self._sample(collection, answers)).metadata_keys

    async def _sample(
        self, collection: str | None, fresh: Callable[[_Entry], bool]
    ) -> FieldSample:
        """The cached sample when ``fresh`` accepts it, else a new one (one at a time)."""
        name = self.stores.name(collection)
        entry = self._entries.get(name)
        if entry is not None and fresh(entry):
            return entry.sample
        async with self._lock:  # waiters reuse the sample taken meanwhile
            entry = self._entries.get(name)
            if entry is not None and fresh(entry):
                return entry.sample
            sample = await self.stores.call(name, sample_fields)
            self._entries[name] = _Entry(sample, time.monotonic())
            return sample
