"""JPEGs decoded, resized and normalised on the model's device, in batches (nvJPEG on CUDA).

``torchvision.io.decode_jpeg(list, device='cuda')`` decodes a whole batch with nvJPEG; the
resize, crop and normalisation follow ``preprocess.py``'s plan (the same output sizes, crop
offsets and padding) with torch's antialiased filter in float32, rounded to whole levels like
Pillow's 8-bit passes: within one level of open_clip's own Pillow transform (the CPU path's
pre-shrink of images over 6x the input differs by a fraction of a level on average; cosine of
the embeddings >= 0.999: ``scripts/gpu_check.py``). EXIF orientation is applied on
the device. A batch nvJPEG refuses is decoded image by image, and an image it still refuses
goes through the CPU path (``decode_image``), which either decodes it or gives the same reject
reason a CPU ingest gives. On ``device='cpu'`` the same code runs with torchvision's libjpeg
(the unit tests).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torchvision.io import ImageReadMode, decode_jpeg

from retrieval.embedders.preprocess import (
    PreprocessConfig,
    crop_box,
    preprocess_image,
    resize_plan,
)
from retrieval.errors import EmbeddingError, ImageDecodeError
from retrieval.imaging import DEFAULT_MAX_PIXELS, decode_image

# torchvision 0.29 warns on every call that its decoders move to TorchCodec; they still work
warnings.filterwarnings(
    "ignore", message="The image decoding and encoding capabilities of TorchVision",
    category=DeprecationWarning,
)

DEVICE_MAX_PIXELS = 4096 * 4096  # bigger JPEGs take the CPU path (draft decoding, less memory)


@dataclass(frozen=True)
class EncodedJpeg:
    """A JPEG left encoded for the device: its bytes and EXIF orientation (1-8)."""

    data: bytes
    orientation: int = 1


class DeviceJpegDecoder:
    """Turns a batch of model inputs, some of them ``EncodedJpeg``, into device tensors.

    ``prepare_batch`` returns one entry per input: a float32 CHW tensor on the device, the
    input itself when it was prepared already (a numpy array), or a one-line reject reason.
    """

    def __init__(
        self, config: PreprocessConfig, device: str, max_pixels: int = DEFAULT_MAX_PIXELS
    ) -> None:
        self.config = config
        self.device = torch.device(device)
        self.max_pixels = max_pixels
        shape = (1, 3, 1, 1)
        self._mean = torch.tensor(config.mean, dtype=torch.float32, device=self.device).view(shape)
        self._std = torch.tensor(config.std, dtype=torch.float32, device=self.device).view(shape)

    def prepare_batch(self, inputs: Sequence[Any]) -> list[Any]:
        """Decode and prepare the JPEGs of a batch on the device; other inputs pass through."""
        out = list(inputs)
        jpegs = [i for i, x in enumerate(inputs) if isinstance(x, EncodedJpeg)]
        if not jpegs:
            return out
        decoded = self.decode([inputs[i] for i in jpegs])
        by_shape: dict[tuple[int, int], list[tuple[int, torch.Tensor]]] = {}
        for index, pixels in zip(jpegs, decoded, strict=True):
            if isinstance(pixels, torch.Tensor):
                shape = (int(pixels.shape[1]), int(pixels.shape[2]))
                by_shape.setdefault(shape, []).append((index, pixels))
            else:
                out[index] = pixels  # the CPU path's prepared image, or its reject reason
        for group in by_shape.values():
            prepared = self.prepare(torch.stack([pixels for _, pixels in group]))
            for (index, _), tensor in zip(group, prepared, strict=True):
                out[index] = tensor
        return out

    def decode(self, jpegs: Sequence[EncodedJpeg]) -> list[torch.Tensor | np.ndarray | str]:
        """uint8 CHW RGB tensors (orientation applied), one batch call; an image the device
        cannot decode gets the CPU path's result instead (prepared array or reject reason)."""
        encoded = [torch.tensor(bytearray(j.data), dtype=torch.uint8) for j in jpegs]
        results: list[torch.Tensor | None]
        try:
            results = list(decode_jpeg(encoded, mode=ImageReadMode.RGB, device=self.device))
        except RuntimeError:  # one bad image fails the whole batch: decode them one by one
            results = [self._decode_one(data) for data in encoded]
        return [
            _orient(pixels, jpeg.orientation) if pixels is not None else self.on_cpu(jpeg.data)
            for pixels, jpeg in zip(results, jpegs, strict=True)
        ]

    def _decode_one(self, encoded: torch.Tensor) -> torch.Tensor | None:
        """One JPEG decoded on the device, or None when it refuses it."""
        try:
            return decode_jpeg(encoded, mode=ImageReadMode.RGB, device=self.device)
        except RuntimeError:
            return None

    def on_cpu(self, data: bytes) -> np.ndarray | str:
        """The CPU path for an image the device refused: its model input, or the reason."""
        try:
            min_side = self.config.draft_min_side
            rgb = decode_image(data, max_pixels=self.max_pixels, min_side=min_side)
            return preprocess_image(rgb, self.config)
        except (ImageDecodeError, EmbeddingError) as exc:
            return str(exc)

    def prepare(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) uint8 images of one size to the model's normalised float32 input."""
        return prepare_tensors(pixels, self.config, self._mean, self._std)


def prepare_tensors(
    pixels: torch.Tensor,
    cfg: PreprocessConfig,
    mean: torch.Tensor | None = None,
    std: torch.Tensor | None = None,
) -> torch.Tensor:
    """``preprocess_image`` in torch for a (B, 3, H, W) uint8 batch of one size, on its device."""
    height, width = int(pixels.shape[2]), int(pixels.shape[3])
    size, interpolation, fill = resize_plan(height, width, cfg)
    x = _resize(pixels.float(), size, "bilinear" if interpolation == "bilinear" else "bicubic")
    if cfg.resize_mode != "squash":
        x = _center_crop_or_pad(x, cfg.size, fill)
    if mean is None or std is None:
        mean = torch.tensor(cfg.mean, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(cfg.std, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    return ((x / 255.0) - mean) / std


def _resize(x: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    """Pillow's antialiased resize in float: width first, then height, each pass rounded and
    clipped to whole levels as Pillow's 8-bit passes are (within one level of Pillow's output;
    one float pass would differ by up to 8 levels where bicubic overshoots at edges)."""
    height, width = int(x.shape[2]), int(x.shape[3])
    if width != size[1]:
        x = torch.nn.functional.interpolate(x, size=(height, size[1]), mode=mode, antialias=True)
        x = x.round_().clamp_(0.0, 255.0)
    if height != size[0]:
        x = torch.nn.functional.interpolate(x, size=size, mode=mode, antialias=True)
        x = x.round_().clamp_(0.0, 255.0)
    return x


def _center_crop_or_pad(x: torch.Tensor, size: tuple[int, int], fill: int) -> torch.Tensor:
    """``preprocess._center_crop_or_pad`` on a (B, 3, H, W) float batch."""
    height, width = int(x.shape[2]), int(x.shape[3])
    (pad_top, pad_left, padded_h, padded_w), (top, left) = crop_box(height, width, size)
    if (padded_h, padded_w) != (height, width):
        padded = x.new_full((x.shape[0], 3, padded_h, padded_w), float(fill))
        padded[:, :, pad_top : pad_top + height, pad_left : pad_left + width] = x
        x = padded
    return x[:, :, top : top + size[0], left : left + size[1]]


def _orient(pixels: torch.Tensor, orientation: int) -> torch.Tensor:
    """EXIF orientation on a CHW tensor, as ``imaging._apply_orientation`` does on HWC."""
    if orientation == 2:
        return pixels.flip(2)
    if orientation == 3:
        return pixels.flip(1, 2)
    if orientation == 4:
        return pixels.flip(1)
    if orientation == 5:
        return pixels.transpose(1, 2)
    if orientation == 6:
        return torch.rot90(pixels, k=-1, dims=(1, 2))
    if orientation == 7:
        return pixels.flip(1, 2).transpose(1, 2)
    if orientation == 8:
        return torch.rot90(pixels, k=1, dims=(1, 2))
    return pixels
