"""Decode image bytes to HxWx3 RGB uint8 with OpenCV, guarded against decompression bombs.

Policy (the same for every format):

* the header is read first (Pillow, lazily: no pixels) and images over ``max_pixels`` are refused
  before any pixel is decoded; bytes Pillow cannot identify are refused too, so every accepted
  image has had its size checked;
* EXIF orientation is applied (the returned array is the image as viewers show it);
* grayscale becomes three equal channels;
* transparency is composited over white (``rgb * a + 255 * (1 - a)``), so transparent logos and
  cut-outs keep their look instead of showing whatever colour hides under alpha 0;
* 16-bit samples are scaled to 8 bits with rounding (``round(v * 255 / 65535)``), float samples
  are clipped to [0, 1] and scaled;
* CMYK JPEGs are converted to RGB by libjpeg (within 1 level of Pillow's ``convert('RGB')``);
* animated GIF/WebP/PNG give their first frame, a multi-page TIFF its first page;
* HEIC/HEIF (``pillow-heif``) and AVIF (Pillow's own reader) decode through Pillow;
* OpenCV decodes; Pillow decodes only what OpenCV cannot (formats OpenCV lacks, and alpha
  TIFFs, whose colour OpenCV premultiplies; Pillow keeps the high byte of 16-bit ones).

``min_side`` (draft decoding): a JPEG at least twice as large as needed is decoded by libjpeg
at 1/2, 1/4 or 1/8 scale in the DCT domain (the largest factor that keeps the short side at or
above ``min_side``), several times faster on camera photos. Callers pass the short side they
need times a quality margin (the embedders ask for 3x the model's input, where the remaining
antialiased resize makes the difference invisible: ``tests/unit/test_draft_decode.py``).

Pillow's own bomb guard still refuses images over ``2 * PIL.Image.MAX_IMAGE_PIXELS`` (~179 MP)
whatever ``max_pixels`` is, and warns above ~89 MP.
"""

from __future__ import annotations

import io
import struct

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from pillow_heif import register_heif_opener

from retrieval.errors import ImageDecodeError
from retrieval.png_chunks import without_color_profile

DEFAULT_MAX_PIXELS = 50_000_000
EXIF_ORIENTATION = 0x0112
_TIFF_WIDTH, _TIFF_LENGTH = 256, 257

_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
# OpenCV applies EXIF orientation itself unless asked for IMREAD_UNCHANGED, and for TIFF always.
_FLAGS_NO_ALPHA = cv2.IMREAD_ANYCOLOR | cv2.IMREAD_ANYDEPTH
_DRAFT_FLAGS = {  # libjpeg's DCT-domain scaling; 8-bit colour, EXIF orientation applied
    2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8,
}
# Where OpenCV has IMREAD_COLOR_RGB (5.0 here), libjpeg writes JPEGs as RGB itself: the same
# pixels as decoding to BGR and converting, ~0.2 ms less per 640x480 photo.
_COLOR_RGB: int | None = getattr(cv2, "IMREAD_COLOR_RGB", None)
_JPEG_RGB_FLAGS = {} if _COLOR_RGB is None else {
    scale: (flags & ~cv2.IMREAD_COLOR) | _COLOR_RGB
    for scale, flags in [(1, cv2.IMREAD_COLOR), *_DRAFT_FLAGS.items()]
}
_PIL_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error, IndexError, TypeError)

register_heif_opener()  # HEIC/HEIF photos (phones) decode through Pillow; AVIF is Pillow's own


def decode_image(
    data: bytes,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_side: int | None = None,
    reduce: bool = False,
) -> np.ndarray:
    """Decode image bytes to a contiguous HxWx3 RGB uint8 array (see the module docstring).

    ``reduce`` (the API's query and thumbnail path): opaque non-JPEG images at least twice
    ``min_side`` are reduced too, by the draft scale (see ``reduced_decode``).
    """
    header = _open_header(data, max_pixels)
    try:
        has_alpha = _has_alpha(header)
        orientation = _orientation(header) if has_alpha else 1
        fmt = header.format or ""
        if reduce and not has_alpha and fmt != "JPEG":
            scale = draft_scale(header.size, min_side)
            reduced = reduced_decode(data, scale) if scale > 1 else None
            if reduced is not None:
                return _finish(reduced, max_pixels, bgr=True)
        if not (has_alpha and fmt == "TIFF"):
            jpeg = fmt == "JPEG" and not has_alpha
            scale = draft_scale(header.size, min_side) if jpeg else 1
            rgb = jpeg and bool(_JPEG_RGB_FLAGS)
            decoded = _decode_cv2(data, has_alpha, scale, rgb=rgb)
            if decoded is not None:
                if has_alpha:  # IMREAD_UNCHANGED leaves EXIF orientation to us
                    decoded = _apply_orientation(decoded, orientation)
                return _finish(decoded, max_pixels, bgr=not rgb)
        return _finish(_decode_pil(header), max_pixels, bgr=False)
    finally:
        header.close()


def read_image_size(data: bytes, *, max_pixels: int | None = None) -> tuple[int, int]:
    """Return (width, height) as decode_image would return it, reading only the header."""
    header = _open_header(data, max_pixels)
    try:
        width, height = _stored_size(header)
        if _orientation(header) in (5, 6, 7, 8):
            return height, width
        return width, height
    finally:
        header.close()


def plain_jpeg(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int] | None:
    """(EXIF orientation 1-8, pixel count) of an RGB or grayscale JPEG, read from its header, or
    None for any other image (CMYK JPEGs included); refuses what ``decode_image`` refuses
    unread, with the same ImageDecodeError. GPU decoders take these JPEGs, the rest goes to
    ``decode_image``.
    """
    header = _open_header(data, max_pixels)
    try:
        if header.format != "JPEG" or header.mode not in ("RGB", "L") or _has_alpha(header):
            return None
        width, height = header.size
        return _orientation(header), width * height
    finally:
        header.close()


def _open_header(data: bytes, max_pixels: int | None) -> Image.Image:
    """Open the image lazily (header only) and enforce the pixel cap."""
    if not data:
        raise ImageDecodeError("empty file (0 bytes)")
    try:
        header = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError(f"image too large to decode safely: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise ImageDecodeError(
            f"not a recognised image format ({len(data)} bytes)"
        ) from exc
    except _PIL_ERRORS as exc:
        raise ImageDecodeError(f"unreadable image header: {_one_line(exc)}") from exc
    width, height = header.size
    if width <= 0 or height <= 0:
        header.close()
        raise ImageDecodeError(f"image has no pixels ({width}x{height})")
    if max_pixels is not None and width * height > max_pixels:
        header.close()
        raise ImageDecodeError(
            f"image is {width}x{height} = {width * height} pixels, over the cap of {max_pixels}"
        )
    return header


def _stored_size(header: Image.Image) -> tuple[int, int]:
    """(width, height) as stored, before orientation (Pillow reports TIFFs already turned)."""
    if header.format == "TIFF":
        tags = getattr(header, "tag_v2", {})
        width, height = tags.get(_TIFF_WIDTH), tags.get(_TIFF_LENGTH)
        if isinstance(width, int) and isinstance(height, int):
            return width, height
    return header.size


def _has_alpha(header: Image.Image) -> bool:
    """Whether the header announces an alpha channel or a transparent colour."""
    return header.mode in _ALPHA_MODES or "transparency" in header.info


def _orientation(header: Image.Image) -> int:
    """The EXIF orientation (1-8) found without decoding pixels; 1 when absent or invalid."""
    if header.format == "PNG" and "exif" not in header.info:
        return 1  # Pillow would decode the whole PNG looking for a late eXIf chunk
    try:
        value = header.getexif().get(EXIF_ORIENTATION, 1)
    except (*_PIL_ERRORS, KeyError):
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def draft_scale(size: tuple[int, int], min_side: int | None) -> int:
    """The largest of 8, 4, 2 that keeps the short side >= min_side; 1 for none (or no ask)."""
    if not min_side or min_side < 1:
        return 1
    short = min(size)
    return next((k for k in (8, 4, 2) if short // k >= min_side), 1)


def reduced_decode(data: bytes, scale: int) -> np.ndarray | None:
    """An opaque image decoded by OpenCV at 1/``scale`` (2, 4 or 8) as 8-bit BGR; None when
    OpenCV cannot decode it.

    Only libjpeg scales while decoding; other decoders produce the full image, which OpenCV's
    ``IMREAD_REDUCED_COLOR_2`` halves at once (a 2x2 box filter) and frees, so the peak is about
    the full image once (3 bytes a pixel, 16-bit samples stripped to 8 while decoding) instead
    of twice; a remaining factor is an area resize of the half.
    """
    try:
        half = cv2.imdecode(
            np.frombuffer(without_color_profile(data), dtype=np.uint8),
            cv2.IMREAD_REDUCED_COLOR_2,
        )
    except cv2.error:
        return None
    if half is None or half.size == 0:
        return None
    factor = scale // 2
    if factor > 1:
        height, width = half.shape[:2]
        shape = (max(1, width // factor), max(1, height // factor))
        half = cv2.resize(half, shape, interpolation=cv2.INTER_AREA)
    return half


def _decode_cv2(
    data: bytes, keep_alpha: bool, scale: int = 1, *, rgb: bool = False
) -> np.ndarray | None:
    """Decode with OpenCV (BGR/BGRA/gray at native depth, or 8-bit RGB for a JPEG with
    ``rgb``); None when OpenCV cannot."""
    if keep_alpha:
        flags = cv2.IMREAD_UNCHANGED
    elif rgb:
        flags = _JPEG_RGB_FLAGS[scale]
    else:
        flags = _DRAFT_FLAGS.get(scale, _FLAGS_NO_ALPHA)
    try:
        decoded = cv2.imdecode(np.frombuffer(without_color_profile(data), dtype=np.uint8), flags)
    except cv2.error:
        return None
    if decoded is None or decoded.size == 0:
        return None
    return decoded


def _decode_pil(header: Image.Image) -> np.ndarray:
    """Decode with Pillow (first frame, orientation applied) to an RGB, RGBA or gray array."""
    try:
        header.load()
        image = ImageOps.exif_transpose(header) or header
        if image.mode in _ALPHA_MODES or "transparency" in image.info:
            image = image.convert("RGBA")
        elif image.mode == "1":
            image = image.convert("L")
        elif not image.mode.startswith(("I", "F", "L")):
            image = image.convert("RGB")
        return np.asarray(image)
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError(f"image too large to decode safely: {exc}") from exc
    except _PIL_ERRORS as exc:
        raise ImageDecodeError(f"corrupt or truncated image: {_one_line(exc)}") from exc


def _finish(pixels: np.ndarray, max_pixels: int, *, bgr: bool) -> np.ndarray:
    """Turn a decoded array of any depth and channel layout into contiguous RGB uint8."""
    height, width = pixels.shape[:2]
    if height * width > max_pixels:
        raise ImageDecodeError(f"decoded image is {width}x{height}, over the cap of {max_pixels}")
    pixels = _scale_to_uint8(pixels)
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    if channels == 1:
        return cv2.cvtColor(pixels.reshape(height, width), cv2.COLOR_GRAY2RGB)
    if channels == 2:
        gray = np.ascontiguousarray(pixels[:, :, 0])
        return _over_white(cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB), pixels[:, :, 1])
    if channels == 3:
        return cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB) if bgr else np.ascontiguousarray(pixels)
    if channels == 4:
        rgb = pixels[:, :, 2::-1] if bgr else pixels[:, :, :3]
        return _over_white(rgb, pixels[:, :, 3])
    raise ImageDecodeError(f"unsupported channel count {channels}")


def _scale_to_uint8(pixels: np.ndarray) -> np.ndarray:
    """Scale 16-bit, 32-bit integer or float samples to uint8 with rounding."""
    kind, size = pixels.dtype.kind, pixels.dtype.itemsize
    if kind == "u" and size == 1:
        return pixels
    if kind in "ui" and size in (2, 4):  # 16-bit samples (Pillow reads them as int32 "I")
        wide = np.clip(pixels, 0, 65535).astype(np.uint32)
        return ((wide + 128) // 257).astype(np.uint8)
    if kind == "f":
        return np.round(np.clip(np.nan_to_num(pixels), 0.0, 1.0) * 255.0).astype(np.uint8)
    raise ImageDecodeError(f"unsupported sample type {pixels.dtype}")


def _over_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Composite straight-alpha RGB over a white background."""
    if alpha.min() == 255:
        return np.ascontiguousarray(rgb)
    a = alpha[:, :, None].astype(np.uint16)
    out = (rgb.astype(np.uint16) * a + 255 * (255 - a) + 127) // 255
    return out.astype(np.uint8)


def _apply_orientation(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation like Pillow's ImageOps.exif_transpose."""
    if orientation == 2:
        out = pixels[:, ::-1]
    elif orientation == 3:
        out = pixels[::-1, ::-1]
    elif orientation == 4:
        out = pixels[::-1]
    elif orientation == 5:
        out = pixels.swapaxes(0, 1)
    elif orientation == 6:
        out = np.rot90(pixels, k=-1)
    elif orientation == 7:
        out = pixels[::-1, ::-1].swapaxes(0, 1)
    elif orientation == 8:
        out = np.rot90(pixels, k=1)
    else:
        return pixels
    return np.ascontiguousarray(out)


def _one_line(exc: BaseException) -> str:
    """An exception as one short line."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]
