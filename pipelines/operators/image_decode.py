"""image_decode.cv2_rgb: file path or bytes -> HxWx3 RGB uint8 (OpenCV)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipelines import register
from retrieval.imaging import decode_image


@register(name="image-decode/cv2-rgb")
class Cv2Rgb:
    """Decode an image with OpenCV to RGB uint8, EXIF orientation applied, pixels capped."""

    def __init__(self, max_pixels: int = 50_000_000) -> None:
        self.max_pixels = max_pixels

    def __call__(self, image: str | Path | bytes | list) -> np.ndarray | list[np.ndarray]:
        if isinstance(image, list):
            return [self._decode_one(x) for x in image]
        return self._decode_one(image)

    def _decode_one(self, image: str | Path | bytes) -> np.ndarray:
        data = image if isinstance(image, bytes) else Path(image).read_bytes()
        return decode_image(data, max_pixels=self.max_pixels)
