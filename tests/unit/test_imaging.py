"""decode_image / read_image_size: formats, orientation, alpha, depth, bombs and bad bytes."""

from __future__ import annotations

import io
import struct
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from retrieval import imaging
from retrieval.errors import ImageDecodeError
from retrieval.imaging import decode_image, read_image_size
from tests.support.images import make_test_image

RNG = np.random.default_rng(7)


def pil_bytes(image: Image.Image, fmt: str, **params: object) -> bytes:
    """Encode a PIL image to bytes."""
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def cv2_bytes(array: np.ndarray, ext: str) -> bytes:
    """Encode an OpenCV (BGR/BGRA/gray) array to bytes."""
    ok, encoded = cv2.imencode(ext, array)
    assert ok
    return encoded.tobytes()


def exif_with(orientation: int) -> Image.Exif:
    """An EXIF block holding only an orientation tag."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif


def pil_reference(data: bytes) -> np.ndarray:
    """What decode_image should return, computed with Pillow (orientation, alpha over white)."""
    image = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
    return np.asarray(image.convert("RGB"))


def assert_rgb(array: np.ndarray, shape: tuple[int, int]) -> None:
    """The decode_image output contract."""
    assert array.shape == (*shape, 3)
    assert array.dtype == np.uint8
    assert array.flags.c_contiguous


def png_header_only(width: int, height: int) -> bytes:
    """A PNG signature and IHDR chunk announcing a size, with no pixel data behind it."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"") + chunk(b"IEND", b"")


# --- orientation -----------------------------------------------------------------------------


def test_jpeg_exif_orientation_is_applied() -> None:
    rgb = np.full((40, 60, 3), 30, np.uint8)
    rgb[:10, :20] = (250, 20, 20)  # red block top-left as stored
    data = pil_bytes(Image.fromarray(rgb), "JPEG", exif=exif_with(6), quality=95)
    out = decode_image(data)
    assert_rgb(out, (60, 40))  # orientation 6: rotate 90 degrees clockwise
    assert out[:20, -10:, 0].mean() > 200 and out[:20, :10, 0].mean() < 60  # now top-right
    assert read_image_size(data) == (40, 60)


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("kind", ["jpeg", "png-rgba", "webp-rgba", "tiff-rgb", "tiff-rgba"])
def test_every_orientation_matches_pillow(kind: str, orientation: int) -> None:
    exif = exif_with(orientation)
    if kind == "jpeg":
        data = pil_bytes(Image.fromarray(make_test_image(orientation, 40, 60)), "JPEG",
                         exif=exif, quality=100)
    else:
        fmt, mode = kind.split("-")
        array = RNG.integers(0, 256, (40, 60, len(mode)), dtype=np.uint8)
        params: dict[str, object] = {"lossless": True} if fmt == "webp" else {}
        data = pil_bytes(Image.fromarray(array), fmt.upper(), exif=exif, **params)
    out = decode_image(data)
    expected = pil_reference(data)
    tolerance = 3 if kind == "jpeg" else 0
    assert out.shape == expected.shape
    assert np.abs(out.astype(int) - expected).max() <= tolerance
    assert read_image_size(data) == (out.shape[1], out.shape[0])


@pytest.mark.parametrize("min_side", [None, 100, 50, 20])
@pytest.mark.parametrize("kind", ["colour", "grey", "rotated", "cmyk"])
def test_jpegs_decoded_straight_to_rgb_match_the_bgr_path(
    kind: str, min_side: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    rgb = make_test_image(5, 240, 320)
    if kind == "grey":
        data = cv2_bytes(rgb[:, :, 1].copy(), ".jpg")
    elif kind == "cmyk":
        data = pil_bytes(Image.fromarray(rgb).convert("CMYK"), "JPEG", quality=95)
    else:
        exif = exif_with(6 if kind == "rotated" else 1)
        data = pil_bytes(Image.fromarray(rgb), "JPEG", exif=exif, quality=95)
    direct = decode_image(data, min_side=min_side)
    monkeypatch.setattr(imaging, "_JPEG_RGB_FLAGS", {})  # OpenCV without IMREAD_COLOR_RGB
    via_bgr = decode_image(data, min_side=min_side)
    assert_rgb(direct, via_bgr.shape[:2])
    assert np.array_equal(direct, via_bgr)


# --- channels, alpha, depth ------------------------------------------------------------------


@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp", ".tiff"])
def test_grayscale_becomes_three_equal_channels(ext: str) -> None:
    gray = make_test_image(3, 30, 50)[:, :, 1].copy()
    out = decode_image(cv2_bytes(gray, ext))
    assert_rgb(out, (30, 50))
    assert np.array_equal(out[:, :, 0], out[:, :, 1]) and np.array_equal(out[:, :, 1], out[:, :, 2])
    if ext != ".jpg":
        assert np.array_equal(out[:, :, 0], gray)


def test_alpha_is_composited_over_white() -> None:
    rgba = np.zeros((4, 3, 4), np.uint8)
    rgba[..., :3] = (10, 200, 40)
    rgba[0, :, 3] = 0  # transparent
    rgba[1, :, 3] = 255  # opaque
    rgba[2:, :, 3] = 128  # half
    out = decode_image(pil_bytes(Image.fromarray(rgba), "PNG"))
    assert_rgb(out, (4, 3))
    assert (out[0] == 255).all()
    assert (out[1] == (10, 200, 40)).all()
    expected = np.round((np.array([10, 200, 40]) * 128 + 255 * 127) / 255)
    assert np.abs(out[2].astype(int) - expected).max() <= 1


@pytest.mark.parametrize(
    "make",
    [
        lambda a: pil_bytes(Image.fromarray(a[..., :2].copy(), "LA"), "PNG"),
        lambda a: pil_bytes(Image.fromarray(a[..., :3].copy()).quantize(16), "PNG", transparency=2),
        lambda a: pil_bytes(Image.fromarray(a[..., :3].copy()), "PNG", transparency=(1, 2, 3)),
        lambda a: pil_bytes(Image.fromarray(a[..., :3].copy()).quantize(16), "GIF", transparency=2),
        lambda a: pil_bytes(Image.fromarray(a), "WEBP", lossless=True),
        lambda a: pil_bytes(Image.fromarray(a), "TIFF"),
    ],
    ids=["LA-png", "palette-trns-png", "rgb-trns-png", "gif-trns", "webp-rgba", "tiff-rgba"],
)
def test_transparency_variants_match_pillow_over_white(make: object) -> None:
    array = RNG.integers(0, 256, (24, 32, 4), dtype=np.uint8)
    data = make(array)  # type: ignore[operator]
    out = decode_image(data)
    assert_rgb(out, (24, 32))
    assert np.abs(out.astype(int) - pil_reference(data)).max() <= 1


@pytest.mark.parametrize("ext", [".png", ".tiff"])
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_16_bit_is_scaled_with_rounding(ext: str, channels: int) -> None:
    shape = (20, 30) if channels == 1 else (20, 30, channels)
    wide = RNG.integers(0, 65536, shape, dtype=np.uint16)
    wide[0, 0], wide[0, 1], wide[0, 2] = 0, 65535, 32896  # black, white, mid (rounds to 128)
    if channels == 4:
        wide[..., 3] = 65535  # opaque, so colour scaling alone is checked
    out = decode_image(cv2_bytes(wide, ext))
    assert_rgb(out, (20, 30))
    expected = np.round(wide.astype(np.float64) / 257.0).astype(int)
    # gray repeats to RGB; BGR(A) written reads back as RGB
    expected = np.repeat(expected[..., None], 3, axis=2) if channels == 1 else expected[..., 2::-1]
    # Pillow decodes alpha TIFFs and keeps the high byte, so those may be one level low
    tolerance = 1 if (ext, channels) == (".tiff", 4) else 0
    assert np.abs(out.astype(int) - expected).max() <= tolerance
    assert out[0, 0].max() == 0 and out[0, 1].min() == 255 and (out[0, 2] == 128).all()


def test_16_bit_grayscale_png_written_by_pillow() -> None:
    wide = RNG.integers(0, 65536, (10, 12), dtype=np.uint16)
    out = decode_image(pil_bytes(Image.fromarray(wide), "PNG"))
    assert np.array_equal(out[..., 0], np.round(wide / 257.0).astype(np.uint8))


def test_cmyk_jpeg_matches_pillow_convert() -> None:
    rgb = make_test_image(11, 40, 50)
    data = pil_bytes(Image.fromarray(rgb).convert("CMYK"), "JPEG", quality=100)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    out = decode_image(data)
    reference = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    assert_rgb(out, (40, 50))
    assert np.abs(out.astype(int) - reference).max() <= 2


def test_animated_gif_gives_its_first_frame() -> None:
    frames = [Image.fromarray(make_test_image(i, 30, 40)).quantize(64) for i in range(3)]
    data = pil_bytes(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50)
    out = decode_image(data)
    assert_rgb(out, (30, 40))
    assert np.array_equal(out, np.asarray(frames[0].convert("RGB")))


@pytest.mark.parametrize("ext", [".png", ".bmp", ".tiff", ".webp", ".jpg", ".gif"])
def test_formats_round_trip(ext: str) -> None:
    rgb = make_test_image(5, 48, 64)
    params = [cv2.IMWRITE_WEBP_QUALITY, 101] if ext == ".webp" else []
    ok, encoded = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    assert ok
    out = decode_image(encoded.tobytes())
    assert_rgb(out, (48, 64))
    if ext == ".jpg":
        assert np.abs(out.astype(int) - rgb).mean() < 8
    elif ext == ".gif":  # OpenCV's GIF writer quantizes to its own palette
        assert np.array_equal(out, pil_reference(encoded.tobytes()))
    else:
        assert np.array_equal(out, rgb)


def test_format_opencv_lacks_is_decoded_by_pillow() -> None:
    rgb = make_test_image(6, 32, 32)
    out = decode_image(pil_bytes(Image.fromarray(rgb), "ICO", sizes=[(32, 32)]))
    assert np.array_equal(out, rgb)


# --- bombs -----------------------------------------------------------------------------------


def test_pixel_cap_is_enforced_from_the_header() -> None:
    data = cv2_bytes(np.zeros((100, 200, 3), np.uint8), ".png")
    with pytest.raises(ImageDecodeError, match="over the cap"):
        decode_image(data, max_pixels=19_999)
    assert decode_image(data, max_pixels=20_000).shape == (100, 200, 3)


@pytest.mark.parametrize("side", [9_000, 20_000, 1_000_000])
def test_bomb_headers_fail_fast_without_decoding(side: int) -> None:
    data = png_header_only(side, side)  # no pixel data: a decoder would fail, not the cap
    start = time.perf_counter()
    with pytest.raises(ImageDecodeError, match=r"cap|too large") as info:
        decode_image(data)
    assert time.perf_counter() - start < 1.0
    assert "\n" not in str(info.value)


# --- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"this is a text file, named photo.jpg\n", "not a recognised image"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 10, "image"),
        (b"\x89PNG\r\n\x1a\n", "image"),
    ],
    ids=["zero-bytes", "text", "jpeg-magic-only", "png-magic-only"],
)
def test_non_images_raise_one_line_errors(data: bytes, reason: str) -> None:
    with pytest.raises(ImageDecodeError, match=reason) as info:
        decode_image(data)
    assert "\n" not in str(info.value)
    with pytest.raises(ImageDecodeError):
        read_image_size(data)


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data:UserWarning")
@pytest.mark.filterwarnings("ignore:Truncated File Read:UserWarning")
@pytest.mark.parametrize("ext", [".jpg", ".png", ".webp", ".gif", ".bmp", ".tiff"])
@pytest.mark.parametrize("fraction", [0.3, 0.97])
def test_truncated_files_raise(ext: str, fraction: float) -> None:
    data = cv2_bytes(cv2.cvtColor(make_test_image(2, 120, 160), cv2.COLOR_RGB2BGR), ext)
    with pytest.raises(ImageDecodeError) as info:
        decode_image(data[: int(len(data) * fraction)])
    assert "\n" not in str(info.value)


def test_text_file_named_jpg(tmp_path: Path) -> None:
    path = tmp_path / "holiday.jpg"
    path.write_text("not really a photo")
    with pytest.raises(ImageDecodeError, match="not a recognised image"):
        decode_image(path.read_bytes())


def test_image_files_fixture_writes_decodable_distinct_images(make_image_files: object) -> None:
    paths = make_image_files(4, ext=".png", sizes=[(30, 40)])  # type: ignore[operator]
    images = [decode_image(p.read_bytes()) for p in paths]
    assert all(image.shape == (30, 40, 3) for image in images)
    assert len({image.tobytes() for image in images}) == 4
