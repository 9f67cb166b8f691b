"""image_decode: a file path, an http(s) URL or bytes -> HxWx3 uint8 ``Image`` (OpenCV).

Registered under towhee's names: ``image-decode/cv2`` (``ops.image_decode.cv2('rgb'|'bgr')``,
BGR by default as in towhee), ``image-decode/cv2-rgb`` and ``towhee/image-decode``
(``ops.image_decode()`` and ``ops.towhee.image_decode()``, BGR). Files are read by
``retrieval.image_rows.read_file`` and decoded by ``decode_image``, the ingest job's own steps;
URLs are fetched with the ingest job's fetcher (its timeouts, retries, size cap and type check).
Only the job's draft JPEG decoding is left out: it needs the model's input size (the vectors
stay within cosine 0.9999: ``tests/ingest/test_ops_pipeline_matches_job.py``).
"""

from __future__ import annotations

import threading
from pathlib import Path

from pipelines import register
from pipelines.image import Image, check_mode
from retrieval.fetch import Fetcher, FetchOptions
from retrieval.image_rows import DEFAULT_MAX_BYTES, read_file
from retrieval.imaging import DEFAULT_MAX_PIXELS, decode_image

URL_SCHEMES = ("http://", "https://")


class Cv2Decode:
    """Decode an image with OpenCV to ``mode`` (EXIF orientation applied, pixels capped)."""

    def __init__(
        self,
        mode: str = "BGR",
        max_pixels: int = DEFAULT_MAX_PIXELS,
        max_bytes: int = DEFAULT_MAX_BYTES,
        fetch: FetchOptions | None = None,
    ) -> None:
        self.mode = check_mode(mode)
        self.max_pixels = max_pixels
        self.max_bytes = max_bytes
        self.fetch_options = fetch or FetchOptions(max_bytes=max_bytes)
        self._fetcher: Fetcher | None = None
        self._lock = threading.Lock()

    def __call__(self, image: str | Path | bytes | list) -> Image | list[Image]:
        if isinstance(image, list):
            return [self._decode_one(x) for x in image]
        return self._decode_one(image)

    def _decode_one(self, image: str | Path | bytes) -> Image:
        rgb = decode_image(self._bytes_of(image), max_pixels=self.max_pixels)
        return Image(rgb if self.mode == "RGB" else rgb[..., ::-1], self.mode)

    def _bytes_of(self, image: str | Path | bytes) -> bytes:
        if isinstance(image, bytes | bytearray):
            return bytes(image)
        if isinstance(image, str) and image.lower().startswith(URL_SCHEMES):
            return self._fetcher_for_urls().fetch(image)
        return read_file(image, self.max_bytes)

    def _fetcher_for_urls(self) -> Fetcher:
        """One connection pool per operator, opened on its first URL."""
        with self._lock:
            if self._fetcher is None:
                self._fetcher = Fetcher(self.fetch_options, connections=4)
            return self._fetcher

    def close(self) -> None:
        """Close the URL connection pool, if one was opened."""
        with self._lock:
            if self._fetcher is not None:
                self._fetcher.close()
                self._fetcher = None


@register(name="image-decode/cv2")
class Cv2(Cv2Decode):
    """``ops.image_decode.cv2(mode='BGR')``: towhee's OpenCV decoder ('rgb' or 'bgr')."""


@register(name="towhee/image-decode")
class DefaultDecode(Cv2Decode):
    """``ops.image_decode()``: towhee's default decoder (OpenCV, BGR)."""


@register(name="image-decode/cv2-rgb")
class Cv2Rgb(Cv2Decode):
    """``ops.image_decode.cv2_rgb()``: OpenCV decoding to RGB."""

    def __init__(
        self,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        max_bytes: int = DEFAULT_MAX_BYTES,
        fetch: FetchOptions | None = None,
    ) -> None:
        super().__init__("RGB", max_pixels, max_bytes, fetch)

