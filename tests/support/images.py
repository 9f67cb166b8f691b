"""Synthetic but structured test images (noise, gradients, shapes), distinct per index."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

DEFAULT_SIZES: tuple[tuple[int, int], ...] = ((96, 128), (128, 96), (80, 80), (150, 220))


def make_test_image(index: int, height: int = 96, width: int = 128) -> np.ndarray:
    """An HxWx3 RGB uint8 image seeded by ``index``: gradient, blurred noise and shapes."""
    rng = np.random.default_rng(10_000 + index)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack(
        [
            xs / max(width - 1, 1) * rng.uniform(60, 200),
            ys / max(height - 1, 1) * rng.uniform(60, 200),
            (xs + ys) / max(height + width - 2, 1) * rng.uniform(60, 200),
        ],
        axis=2,
    )
    noise = cv2.GaussianBlur(rng.normal(0, 40, (height, width, 3)).astype(np.float32), (0, 0), 1.5)
    image = np.clip(base + noise, 0, 255).astype(np.uint8)
    scale = min(height, width)
    for _ in range(3 + index % 4):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        center = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        if rng.random() < 0.5:
            radius = int(rng.integers(max(2, scale // 10), max(3, scale // 3)))
            cv2.circle(image, center, radius, colour, -1, lineType=cv2.LINE_AA)
        else:
            corner = (center[0] + int(rng.integers(4, max(5, width // 2))),
                      center[1] + int(rng.integers(4, max(5, height // 2))))
            cv2.rectangle(image, center, corner, colour, -1)
    cv2.line(image, (0, index % height), (width - 1, height - 1 - index % height),
             (255, 255, 255), max(1, scale // 40), lineType=cv2.LINE_AA)
    return image


def write_image_files(
    directory: Path,
    count: int,
    *,
    ext: str = ".jpg",
    sizes: Sequence[tuple[int, int]] = DEFAULT_SIZES,
    start: int = 0,
) -> list[Path]:
    """Write ``count`` distinct images (cycling ``sizes`` as (h, w)) with OpenCV; return paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(start, start + count):
        height, width = sizes[index % len(sizes)]
        rgb = make_test_image(index, height, width)
        path = directory / f"img_{index:04d}{ext}"
        if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
            raise OSError(f"OpenCV could not write {path}")
        paths.append(path)
    return paths
