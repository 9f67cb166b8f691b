"""PNG colour profiles are dropped before OpenCV decodes: same pixels, no libpng warning."""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import pytest

from retrieval.imaging import decode_image
from retrieval.png_chunks import PNG_SIGNATURE, without_color_profile
from tests.support.images import make_test_image


def _chunk(kind: bytes, body: bytes) -> bytes:
    return (struct.pack(">I", len(body)) + kind + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))


def _png() -> bytes:
    ok, encoded = cv2.imencode(".png", make_test_image(3, 40, 56))
    assert ok
    return encoded.tobytes()


BAD_PROFILE = _chunk(b"iCCP", b"bogus\0\0" + zlib.compress(b"\0" * 200))


def test_a_bad_profile_is_dropped_and_the_pixels_stay(capfd: pytest.CaptureFixture[str]) -> None:
    clean = _png()
    with_profile = clean[:33] + BAD_PROFILE + clean[33:]
    assert without_color_profile(with_profile) == clean
    capfd.readouterr()
    decoded = decode_image(with_profile)
    native = capfd.readouterr().err  # libpng writes to file descriptor 2
    assert "libpng warning" not in native
    assert np.array_equal(decoded, decode_image(clean))


def test_other_bytes_pass_through_untouched() -> None:
    clean = _png()
    assert without_color_profile(clean) is clean  # no profile: no copy
    truncated = PNG_SIGNATURE + BAD_PROFILE[:10]
    assert without_color_profile(truncated) is truncated
    jpeg = cv2.imencode(".jpg", make_test_image(1, 16, 16))[1].tobytes()
    assert without_color_profile(jpeg) is jpeg
    after_data = clean[:-12] + BAD_PROFILE + clean[-12:]  # a profile after IDAT is not looked for
    assert without_color_profile(after_data) is after_data
