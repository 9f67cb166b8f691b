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
from retrieval.stores.base import VectorStore
from retrieval.types import Modality, Record

DEFAULT_MAX_BYTES = 50 * 1024 * 1024  # the largest file read as one image


class FileReadError(MmragError):
    """A file that cannot be read as one item (missing, not a regular file, empty, too big)."""


class NotAFileError(OSError):
    """A path that is not a regular file (a folder, FIFO, socket or device)."""


def open_regular(path: str | Path) -> IO[bytes]:
    """Open a regular file for reading without ever blocking on a FIFO or device."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotAFileError(f"not a regular file: {path}")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def os_reason(exc: OSError) -> str:
    """A one-line reason for an OSError."""
    if isinstance(exc, NotAFileError):
        return "not a regular file"
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
    """The stored row of one image (or video frame)."""
    return Record(
        id=row_id,
        vector=np.asarray(vector, dtype=np.float32),
        source=source,
        caption=caption,
        modality=Modality.IMAGE,
        metadata=dict(metadata or {}),
        model_id=model.model_id,
    )


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
