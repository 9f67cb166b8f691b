"""Images for vision models: a hit's bytes -> a bounded JPEG ``data:`` URI."""

from __future__ import annotations

import base64
import os
import stat
from collections.abc import Callable

import cv2

from retrieval.errors import ImageDecodeError
from retrieval.imaging import decode_image
from retrieval.types import Hit

ImageLoader = Callable[[Hit], bytes | None]
DEFAULT_MAX_PX = 512
JPEG_QUALITY = 85
MAX_FILE_BYTES = 64 * 1024 * 1024


def image_data_uri(
    data: bytes, *, max_px: int = DEFAULT_MAX_PX, max_pixels: int = 50_000_000
) -> str | None:
    """A JPEG data URI whose longest side is at most ``max_px``; None for undecodable bytes."""
    try:
        rgb = decode_image(data, max_pixels=max_pixels)
    except ImageDecodeError:
        return None
    height, width = rgb.shape[:2]
    scale = min(1.0, max_px / max(height, width))
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(
        ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
    )
    if not ok:
        return None
    return "data:image/jpeg;base64," + base64.b64encode(encoded.tobytes()).decode("ascii")


def read_local_image(hit: Hit) -> bytes | None:
    """The bytes of a hit whose source is a local regular file (never fetches URLs); else None."""
    source = hit.source
    if not source or "://" in source:
        return None
    try:  # O_NONBLOCK: a FIFO in the file's place must not hang the caller
        fd = os.open(source, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_FILE_BYTES:
            return None
        try:
            return handle.read(MAX_FILE_BYTES + 1)
        except OSError:
            return None
