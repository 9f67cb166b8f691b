"""open_clip's inference image transform on numpy arrays: resize, crop or pad, normalize.

Matches ``open_clip.image_transform_v2(cfg, is_train=False)`` for the resize modes open_clip
has ('shortest', 'longest', 'squash'): the same output sizes, crop offsets and padding, and
Pillow's antialiased resampling. With ``reducing_gap=None`` the resize runs on a Pillow view of
the array (the very filter open_clip's PIL path uses) and the output equals open_clip's tensor
exactly. By default an image whose short side is at least ``2 * reducing_gap`` times the target
is first box-shrunk by an integer factor with OpenCV's INTER_AREA, and the antialiased resize
runs in torch's uint8 kernel (a port of Pillow-SIMD's: 0.46 ms instead of Pillow's 2.3 ms for
640x480 -> 298x224, at most one level apart, 0.002 levels on average). Both are
single-threaded and release the GIL: safe in decode worker threads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image

from retrieval.errors import ConfigError, EmbeddingError

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
RESIZE_MODES = ("shortest", "longest", "squash")
DRAFT_MARGIN = 3.0  # a JPEG is decoded no smaller than 3x the model's input side
_RESAMPLE = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "random": Image.Resampling.BICUBIC,  # open_clip ignores 'random' at inference
}


@dataclass(frozen=True)
class PreprocessConfig:
    """The inference preprocessing of one model (open_clip's ``preprocess_cfg``)."""

    size: tuple[int, int] = (224, 224)  # (height, width)
    mean: tuple[float, float, float] = OPENAI_MEAN
    std: tuple[float, float, float] = OPENAI_STD
    interpolation: str = "bicubic"
    resize_mode: str = "shortest"
    fill_color: int = 0
    reducing_gap: float | None = 3.0

    def __post_init__(self) -> None:
        if self.resize_mode not in RESIZE_MODES:
            raise ConfigError(f"resize_mode {self.resize_mode!r} is not one of {RESIZE_MODES}")
        if self.interpolation not in _RESAMPLE:
            raise ConfigError(
                f"interpolation {self.interpolation!r} is not one of {list(_RESAMPLE)}"
            )
        if min(self.size) < 1 or len(self.mean) != 3 or len(self.std) != 3:
            raise ConfigError(f"bad preprocess config: size={self.size} mean={self.mean}")

    @classmethod
    def from_open_clip(
        cls, cfg: Mapping[str, Any], *, reducing_gap: float | None = 3.0
    ) -> PreprocessConfig:
        """Build from ``model.visual.preprocess_cfg`` (size, mean, std, interpolation, ...)."""
        return cls(
            size=_pair(cfg.get("size", 224)),
            mean=_triple(cfg.get("mean") or OPENAI_MEAN),
            std=_triple(cfg.get("std") or OPENAI_STD),
            interpolation=str(cfg.get("interpolation") or "bicubic"),
            resize_mode=str(cfg.get("resize_mode") or "shortest"),
            fill_color=int(cfg.get("fill_color") or 0),
            reducing_gap=reducing_gap,
        )

    @property
    def draft_min_side(self) -> int | None:
        """Short side JPEGs may be decoded down to (imaging.py); None in exact mode."""
        if self.reducing_gap is None:  # exact mode decodes every pixel, as open_clip does
            return None
        return int(max(self.size) * DRAFT_MARGIN)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """The (channels, height, width) of a prepared image."""
        return (3, *self.size)


def preprocess_image(rgb: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """Turn one HxWx3 RGB uint8 image into the model's normalized float32 CHW input."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise EmbeddingError(f"expected an HxWx3 uint8 RGB image, got {rgb.shape} {rgb.dtype}")
    if rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise EmbeddingError(f"image has no pixels: {rgb.shape}")
    return normalize(resize_and_crop(rgb, cfg), cfg)


def resize_and_crop(rgb: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """Resize and crop/pad HxWx3 uint8 to cfg.size exactly as open_clip's PIL transform does."""
    size, interpolation, fill = resize_plan(rgb.shape[0], rgb.shape[1], cfg)
    resized = _resize(rgb, size, interpolation, cfg.reducing_gap)
    if cfg.resize_mode == "squash":
        return resized
    return _center_crop_or_pad(resized, cfg.size, fill)


def resize_plan(height: int, width: int, cfg: PreprocessConfig) -> tuple[tuple[int, int], str, int]:
    """(height, width) an image of this size is resized to, the filter, and the padding value
    of the center crop that follows (the GPU path, ``gpu_decode.py``, follows the same plan)."""
    target_h, target_w = cfg.size
    if cfg.resize_mode == "squash":
        return (target_h, target_w), cfg.interpolation, 0
    if cfg.resize_mode == "longest":
        size = _keep_ratio_size(height, width, cfg.size, longest=True)
        return size, cfg.interpolation, cfg.fill_color
    if target_h == target_w:  # torchvision Resize(int): short side to size, long side truncated
        short, long = min(height, width), max(height, width)
        new_long = int(target_h * long / short)
        new_size = (target_h, new_long) if height <= width else (new_long, target_h)
        return new_size, cfg.interpolation, 0
    # open_clip's ResizeKeepRatio(size), always bicubic
    return _keep_ratio_size(height, width, cfg.size, longest=False), "bicubic", 0


def normalize(rgb: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """HxWx3 uint8 to CHW float32 ``(x / 255 - mean) / std`` (torchvision's float32 math)."""
    chw = rgb.transpose(2, 0, 1).astype(np.float32, order="C")  # one copy, any input strides
    chw /= np.float32(255.0)
    chw -= np.asarray(cfg.mean, dtype=np.float32)[:, None, None]
    chw /= np.asarray(cfg.std, dtype=np.float32)[:, None, None]
    return chw


def _resize(
    rgb: np.ndarray, size: tuple[int, int], interpolation: str, reducing_gap: float | None
) -> np.ndarray:
    """Resize to (height, width) with Pillow's filter, after an optional INTER_AREA pre-shrink."""
    height, width = rgb.shape[:2]
    new_h, new_w = size
    if (height, width) == (new_h, new_w):
        return rgb
    if reducing_gap is not None:
        factor = int(min(height / new_h, width / new_w) / reducing_gap)
        if factor >= 2:
            shrunk = (max(1, width // factor), max(1, height // factor))
            rgb = cv2.resize(rgb, shrunk, interpolation=cv2.INTER_AREA)
        return _resize_torch(rgb, (new_h, new_w), interpolation)
    image = Image.fromarray(np.ascontiguousarray(rgb))
    return np.asarray(image.resize((new_w, new_h), _RESAMPLE[interpolation]))


def _resize_torch(rgb: np.ndarray, size: tuple[int, int], interpolation: str) -> np.ndarray:
    """Pillow's antialiased filter in torch's uint8 kernel (channels-last, one thread).

    Returns an HxWx3 view of the kernel's CHW output: ``normalize`` turns it back to CHW, so
    copying it to HWC order first (~0.25 ms for 224x298) would be wasted.
    """
    mode = "bilinear" if interpolation == "bilinear" else "bicubic"
    # writable as torch.from_numpy wants (a read-only array, e.g. a rotated view, is copied)
    pixels = torch.from_numpy(np.require(rgb, requirements=("C", "W"))).permute(2, 0, 1)
    pixels = pixels.unsqueeze(0)
    out = torch.nn.functional.interpolate(pixels, size=size, mode=mode, antialias=True)
    return out[0].permute(1, 2, 0).numpy()


def _keep_ratio_size(
    height: int, width: int, target: tuple[int, int], *, longest: bool
) -> tuple[int, int]:
    """open_clip's ResizeKeepRatio output (height, width) for the shortest or longest edge."""
    ratio_h, ratio_w = height / target[0], width / target[1]
    ratio = max(ratio_h, ratio_w) if longest else min(ratio_h, ratio_w)
    return max(1, round(height / ratio)), max(1, round(width / ratio))


def _center_crop_or_pad(rgb: np.ndarray, size: tuple[int, int], fill: int) -> np.ndarray:
    """torchvision's center crop, padding with ``fill`` first where the image is smaller."""
    height, width = rgb.shape[:2]
    (pad_top, pad_left, padded_h, padded_w), (top, left) = crop_box(height, width, size)
    if (padded_h, padded_w) != (height, width):
        padded = np.full((padded_h, padded_w, 3), fill, dtype=np.uint8)
        padded[pad_top : pad_top + height, pad_left : pad_left + width] = rgb
        rgb = padded
    return rgb[top : top + size[0], left : left + size[1]]


def crop_box(
    height: int, width: int, size: tuple[int, int]
) -> tuple[tuple[int, int, int, int], tuple[int, int]]:
    """torchvision's center crop of an image to ``size``: the padding first, where the image is
    smaller ((top, left) offsets and the padded height and width), then the crop's (top, left)."""
    crop_h, crop_w = size
    pad_top = (crop_h - height) // 2 if crop_h > height else 0
    pad_left = (crop_w - width) // 2 if crop_w > width else 0
    padded_h, padded_w = max(height, crop_h), max(width, crop_w)
    top = round((padded_h - crop_h) / 2.0)
    left = round((padded_w - crop_w) / 2.0)
    return (pad_top, pad_left, padded_h, padded_w), (top, left)


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    """An int or (h, w) sequence as an (h, w) tuple."""
    if isinstance(size, int):
        return size, size
    values = [int(v) for v in size]
    return (values[0], values[0]) if len(values) == 1 else (values[0], values[1])


def _triple(values: float | Sequence[float]) -> tuple[float, float, float]:
    """A scalar or 3-sequence as a 3-tuple of floats."""
    if isinstance(values, (int, float)):
        return float(values), float(values), float(values)
    a, b, c = (float(v) for v in values)
    return a, b, c
