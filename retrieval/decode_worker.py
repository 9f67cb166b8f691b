"""One image decoded and prepared for the model, in the calling thread or in a decode worker
process (``ingest.decode_pool``), whose model input goes into a slot of shared memory.

This module imports only what decoding needs (OpenCV, Pillow, torch's resize kernel), so a
worker process starts without the rest of mmrag.
"""

from __future__ import annotations

import math
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from multiprocessing import shared_memory
from typing import Any

import numpy as np

from retrieval.embedders.preprocess import PreprocessConfig, preprocess_image
from retrieval.errors import EmbeddingError, ImageDecodeError
from retrieval.imaging import decode_image
from retrieval.photo_metadata import photo_fields

Prepare = Callable[[Any], Any]


@dataclass(frozen=True)
class Decoded:
    """One image decoded and prepared for the model (with its photo fields when asked), or the
    one-line reason it could not be."""

    prepared: Any = None
    fields: Mapping[str, Any] | None = None
    error: str | None = None


def decode_and_prepare(
    data: bytes, prepare: Prepare, max_pixels: int, min_side: int | None, photo: bool
) -> Decoded:
    """Decode and prepare one image; ``photo`` adds its size and EXIF fields."""
    try:
        rgb = decode_image(data, max_pixels=max_pixels, min_side=min_side)
        prepared = prepare(rgb)
    except (ImageDecodeError, EmbeddingError) as exc:
        return Decoded(error=str(exc))
    return Decoded(prepared, photo_fields(data) if photo else None)


def slot_view(memory: shared_memory.SharedMemory, slot: int, shape: tuple[int, ...]) -> Any:
    """A float32 array over one slot of a shared-memory block of model inputs."""
    size = math.prod(shape)
    return np.ndarray(shape, dtype=np.float32, buffer=memory.buf, offset=slot * size * 4)


_WORKER: dict[str, Any] = {}  # one per worker process: its view of the block and its settings


def start_worker(
    name: str, config: PreprocessConfig, max_pixels: int, min_side: int | None
) -> None:
    """Worker start: attach to the block, one thread for OpenCV and torch, Ctrl-C to the parent."""
    import cv2
    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    _WORKER.update(
        memory=shared_memory.SharedMemory(name=name), config=config, max_pixels=max_pixels,
        min_side=min_side,
    )


def decode_into(slot: int, data: bytes, photo: bool) -> tuple[Any, str | None]:
    """In a worker: decode and prepare into ``slot``; returns (photo fields, reject reason)."""
    config: PreprocessConfig = _WORKER["config"]
    decoded = decode_and_prepare(
        data, lambda rgb: preprocess_image(rgb, config), _WORKER["max_pixels"],
        _WORKER["min_side"], photo,
    )
    if decoded.error is not None:
        return None, decoded.error
    slot_view(_WORKER["memory"], slot, config.input_shape)[...] = decoded.prepared
    return decoded.fields, None
