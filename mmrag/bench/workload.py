"""What the bench feeds the system: distinct text queries, warm-up texts, JPEG files."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np

WORDS = [
    "dog",
    "cat",
    "car",
    "tree",
    "red",
    "blue",
    "house",
    "beach",
    "street",
    "night",
    "city",
    "river",
    "mountain",
    "snow",
    "child",
    "bicycle",
    "bird",
    "flower",
    "boat",
    "train",
    "window",
    "chair",
    "table",
    "sunset",
    "forest",
    "market",
    "bridge",
    "horse",
    "woman",
    "man",
    "old",
    "small",
    "large",
    "green",
    "yellow",
    "wet",
    "dry",
    "running",
    "sitting",
    "flying",
    "parked",
]


def unique_queries(n: int, seed: int) -> list[str]:
    """n distinct short text queries (3..9 words), so the query cache never answers."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        words = rng.choices(WORDS, k=rng.randint(3, 9))
        out.append(f"{' '.join(words)} {seed}x{i}")
    return out


def warm_texts(seed: int = 0) -> list[str]:
    """Queries of 1..18 words: one call each makes the first real query of a token length
    not pay for creating that shape's kernels (~0.5 s per new shape for ViT-B-32 here)."""
    return [
        " ".join(WORDS[(seed + j) % len(WORDS)] for j in range(n)) + f" w{seed}x{n}"
        for n in range(1, 19)
    ]


def write_jpegs(folder: Path, count: int, size: tuple[int, int] = (480, 640)) -> list[Path]:
    """count distinct JPEG photos-sized files (noise + gradients), written with OpenCV."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    h, w = size
    grad = np.linspace(0, 255, w, dtype=np.float32)[None, :, None]
    paths = []
    base = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    for i in range(count):
        img = (base.astype(np.float32) * 0.5 + grad * ((i % 7) / 7.0)).astype(np.uint8)
        img = np.roll(img, i * 13, axis=1)
        img[(i * 17) % h : (i * 17) % h + 20, :, i % 3] = 255 - i % 255
        path = folder / f"img{i:06d}.jpg"
        cv2.imwrite(str(path), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
        paths.append(path)
    return paths
