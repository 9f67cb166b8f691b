"""File to stored image row: the steps the ingest job and the towhee-style operators share.

Both read files with ``read_file`` and hash them with ``retrieval.ids.content_id``, decode with
``retrieval.imaging.decode_image``, embed with the ``Embedder`` (unit vectors; ``l2_normalize``),
and store with the functions below: the collection records the model that made the vectors
(``EmbeddingModel``: id, width, spec) and every row is built by ``image_record``.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from retrieval.embedders.tagged import EmbeddingModel
from retrieval.errors import MmragError, StoreError, StoreUnavailableError
from retrieval.source_names import storable
from retrieval.stores.base import VectorStore
from retrieval.stores.milvus_rows import MAX_CAPTION_BYTES, truncate_utf8
from retrieval.types import Modality, Record

DEFAULT_MAX_BYTES = 50 * 1024 * 1024  # the largest file read as one image


class FileReadError(MmragError):
    """A file that cannot be read as one item (missing, not a regular file, empty, too big)."""


class NotAFileError(OSError):
    """A path that is not a regular file (a folder, FIFO, socket or device)."""

    def __init__(self, kind: str) -> None:
        super().__init__(f"not a regular file but {kind}")
        self.kind = kind


class BadPathError(OSError):
    """A path no file can have (a NUL character, text the file system cannot encode)."""


def open_regular(path: str | Path) -> IO[bytes]:
    """Open a regular file for reading; FIFOs and devices are refused before being opened.

    The kind is checked with ``stat`` first (opening a device can have effects), and again on
    the open descriptor, opened with O_NONBLOCK so a FIFO swapped in meanwhile never blocks.
    """
    name = os.fspath(path)
    if "\0" in name:
        raise BadPathError("the path contains a NUL character")
    try:
        os.fsencode(name)
    except UnicodeEncodeError as exc:
        raise BadPathError("the path is not text the file system can encode") from exc
    _check_regular(os.stat(name).st_mode)
    fd = os.open(name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        _check_regular(os.fstat(fd).st_mode)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _check_regular(mode: int) -> None:
    """NotAFileError naming the kind of anything but a regular file."""
    if stat.S_ISREG(mode):
        return
    kinds = (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    raise NotAFileError(next((kind for test, kind in kinds if test(mode)), "a special file"))


def os_reason(exc: OSError) -> str:
    """A one-line reason for an OSError (never the path: reasons are shown with it)."""
    if isinstance(exc, NotAFileError | BadPathError):
        return str(exc)
    return exc.strerror or " ".join(str(exc).split()) or type(exc).__name__


def read_file(path: str | Path, max_bytes: int) -> bytes:
    """The bytes of a regular, non-empty file of at most ``max_bytes`` (FileReadError if not)."""
    try:
        with open_regular(path) as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > max_bytes:
                raise FileReadError(f"file is {size} bytes, over the cap of {max_bytes}")
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise FileReadError(f"cannot read file: {os_reason(exc)}") from exc
    if not data:
        raise FileReadError("empty file (0 bytes)")
    if len(data) > max_bytes:
        raise FileReadError(f"file grew over the cap of {max_bytes} bytes")
    return data


def ensure_collection_for(store: VectorStore, model: EmbeddingModel) -> None:
    """Create the store's collection for the model (recording its spec) or check it matches."""
    store.ensure_collection(model.dim, model.model_id, spec=model.spec)


def image_record(
    row_id: str,
    vector: np.ndarray,
    model: EmbeddingModel,
    *,
    source: str,
    caption: str = "",
    metadata: Mapping[str, Any] | None = None,
) -> Record:
    """The stored row of one image (or video frame).

    A source that is not valid UTF-8 is stored as text with its exact bytes in the metadata
    (``retrieval.source_names``); the caption is cut to what the store holds (``fit_caption``).
    """
    text, fields = storable(source, metadata or {})
    return Record(
        id=row_id,
        vector=np.asarray(vector, dtype=np.float32),
        source=text,
        caption=fit_caption(caption)[0],
        modality=Modality.IMAGE,
        metadata=fields,
        model_id=model.model_id,
    )


def fit_caption(caption: str) -> tuple[str, bool]:
    """The caption cut to MAX_CAPTION_BYTES of UTF-8 (whole characters), and whether it was cut."""
    fitted = truncate_utf8(caption, MAX_CAPTION_BYTES)
    return fitted, fitted != caption


def write_rows(store: VectorStore, records: Sequence[Record], *, new: bool) -> dict[int, str]:
    """Write rows in one call; if the store refuses the batch, upsert row by row.

    ``new`` says the caller checked the ids are not stored (``add``), else rows replace theirs
    by id (``upsert``). Returns the refused rows (index -> one-line reason); part of the batch
    may be written. An unreachable store, or one refusing every row, raises instead.
    """
    if not records:
        return {}
    try:
        if new:
            store.add(records)
        else:
            store.upsert(records)
        return {}
    except StoreUnavailableError:
        raise
    except StoreError as batch_error:
        refused: dict[int, str] = {}
        for index, record in enumerate(records):
            try:
                store.upsert([record])
            except StoreUnavailableError:
                raise
            except StoreError as exc:
                refused[index] = " ".join(str(exc).split())[:300]
        if len(refused) == len(records):
            raise batch_error
        return refused
