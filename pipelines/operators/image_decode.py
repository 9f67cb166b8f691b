"""image_decode.cv2_rgb: file path or bytes -> HxWx3 RGB uint8 (OpenCV), as the ingest job reads.

Files are read by ``retrieval.image_rows.read_file`` and decoded by ``decode_image``, the ingest
job's own steps. Only the job's draft JPEG decoding is left out: it needs the model's input size
(the vectors stay within cosine 0.9999: ``tests/ingest/test_ops_pipeline_matches_job.py``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipelines import register
from retrieval.image_rows import DEFAULT_MAX_BYTES, read_file
from retrieval.imaging import DEFAULT_MAX_PIXELS, decode_image


@register(name="image-decode/cv2-rgb")
class Cv2Rgb:
    """Decode an image with OpenCV to RGB uint8, EXIF orientation applied, pixels capped."""

    def __init__(
        self, max_pixels: int = DEFAULT_MAX_PIXELS, max_bytes: int = DEFAULT_MAX_BYTES
    ) -> None:
        self.max_pixels = max_pixels
        self.max_bytes = max_bytes

    def __call__(self, image: str | Path | bytes | list) -> np.ndarray | list[np.ndarray]:
        if isinstance(image, list):
            return [self._decode_one(x) for x in image]
        return self._decode_one(image)

    def _decode_one(self, image: str | Path | bytes) -> np.ndarray:
        data = image if isinstance(image, bytes) else read_file(image, self.max_bytes)
        return decode_image(data, max_pixels=self.max_pixels)
