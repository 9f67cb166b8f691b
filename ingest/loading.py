"""Per-item work done in parallel with the model: read or fetch bytes, hash, decode, prepare."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from ingest.fetch import Fetcher, FetchError
from ingest.sources import SourceItem
from retrieval.decode_worker import Decoded, Prepare, decode_and_prepare
from retrieval.ids import content_id
from retrieval.image_rows import FileReadError, read_file


@dataclass(frozen=True)
class Work:
    """One stored-to-be row on its way through the job (an image, a video frame or a passage).

    ``id`` is empty until known (the manifest's id, a frame's id, or the content hash once
    read); ``checked`` says it was looked up in the store; a row leaves the job ``ready`` (with
    ``prepared`` model input, or a passage's ``text`` for the text tower), as a ``duplicate``,
    or with an ``error`` and its ``stage``.
    """

    item: SourceItem
    source: str
    id: str = ""
    metadata: Mapping[str, Any] | None = None
    data: bytes | None = None
    prepared: Any = None
    text: str | None = None
    error: str | None = None
    stage: str = ""
    duplicate: bool = False
    checked: bool = False

    @classmethod
    def of(cls, item: SourceItem) -> Work:
        """The work of an image item (or the reject of an item that failed before reading)."""
        if item.error is not None:
            return cls(item=item, source=item.source, error=item.error, stage=item.stage)
        return cls(item=item, source=item.source, id=item.id or "")

    @property
    def settled(self) -> bool:
        """Rejected or a duplicate: nothing more to do but count it."""
        return self.error is not None or self.duplicate

    @property
    def ready(self) -> bool:
        """Decoded and prepared (or a passage's text), new, and not rejected."""
        return (self.prepared is not None or self.text is not None) and not self.settled

    @property
    def fields(self) -> Mapping[str, Any]:
        """The metadata to store (a frame's own, else the item's)."""
        return self.item.metadata if self.metadata is None else self.metadata

    def reject(self, reason: str, stage: str) -> Work:
        """This work, rejected with a one-line reason (payloads dropped)."""
        return replace(self, error=reason, stage=stage, data=None, prepared=None, text=None)


def read_work(work: Work, fetcher: Fetcher, max_bytes: int) -> Work:
    """Read a file or fetch a URL, and derive the id (the manifest's id wins over the hash)."""
    if work.settled or work.prepared is not None or work.data is not None or work.text is not None:
        return work
    item = work.item
    if item.kind == "url":
        try:
            data = fetcher.fetch(item.source)
        except FetchError as exc:
            return work.reject(str(exc), "fetch")
    else:
        try:
            data = read_file(item.source, max_bytes)
        except FileReadError as exc:
            return work.reject(str(exc), "read")
    return replace(work, data=data, id=work.id or content_id(data))


Decoder = Callable[[bytes, bool], Decoded]


def decode_work(
    work: Work, prepare: Prepare, max_pixels: int, min_side: int | None = None
) -> Work:
    """Decode and prepare a new item for the model; rejects carry a one-line reason."""
    return decode_with(
        work, lambda data, photo: decode_and_prepare(data, prepare, max_pixels, min_side, photo)
    )


def decode_with(work: Work, decoder: Decoder) -> Work:
    """Decode a new item with ``decoder`` (in this thread, a worker process, or deferred to the
    GPU); the work settles as ready or as a ``decode`` reject."""
    if work.settled or work.prepared is not None or work.data is None:
        return replace(work, data=None) if work.data is not None else work
    decoded = decoder(work.data, work.item.photo)
    if decoded.error is not None:
        return work.reject(decoded.error, "decode")
    metadata = work.metadata
    if decoded.fields is not None:  # a folder's photo: its own size and EXIF fields join the file's
        metadata = {**work.fields, **decoded.fields}
    return replace(work, data=None, prepared=decoded.prepared, metadata=metadata)
