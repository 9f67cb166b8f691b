"""``Image``: a decoded HxWx3 uint8 array that knows its channel order (towhee's ``Image``)."""

from __future__ import annotations

from typing import Any

import numpy as np

MODES = ("RGB", "BGR")


class Image(np.ndarray):
    """A uint8 image array with ``mode`` ('RGB' or 'BGR'); views and slices keep the mode."""

    mode: str

    def __new__(cls, pixels: Any, mode: str = "RGB") -> Image:
        out = np.asarray(pixels, dtype=np.uint8).view(cls)
        out.mode = check_mode(mode)
        return out

    def __array_finalize__(self, obj: Any) -> None:
        self.mode = getattr(obj, "mode", "RGB")

    def __reduce__(self) -> Any:
        reduced: Any = super().__reduce__()
        return reduced[0], reduced[1], (reduced[2], self.mode)

    def __setstate__(self, state: Any) -> None:
        array_state, self.mode = state
        super().__setstate__(array_state)


def check_mode(mode: str) -> str:
    """The mode in upper case; ValueError for anything but RGB and BGR."""
    upper = str(mode).upper()
    if upper not in MODES:
        raise ValueError(f"image mode must be 'rgb' or 'bgr', not {mode!r}")
    return upper


def as_rgb(image: Any) -> np.ndarray:
    """The pixels in RGB order: a BGR ``Image`` is flipped, anything else is taken as RGB."""
    pixels = np.asarray(image)
    if getattr(image, "mode", "RGB") == "BGR" and pixels.ndim == 3:
        return np.ascontiguousarray(pixels[..., ::-1])
    return pixels
