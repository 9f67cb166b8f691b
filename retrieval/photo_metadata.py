"""What a photo says about itself: its size as shown, and from EXIF when date taken, camera and
GPS position, as filterable metadata fields.

Fields (absent when the image does not say; every value JSON-ready):

* ``width``, ``height``: pixels as viewers show the image (EXIF orientation applied, as
  ``retrieval.imaging.decode_image`` applies it);
* ``orientation``: the EXIF orientation (1-8) that was applied, when EXIF has one;
* ``taken``: DateTimeOriginal (else DateTimeDigitized, else DateTime) as an ISO-8601 string in
  the camera's local time, ``2024-05-01T12:30:00``, with the offset (``+02:00``) when EXIF
  records one, so ``{"taken": {"gte": "2024-01-01"}}`` is a date range;
* ``camera_make``, ``camera_model``: EXIF Make and Model, trimmed;
* ``gps_lat``, ``gps_lon``: decimal degrees (south and west negative).

Only the header is read (Pillow opens images lazily); an unreadable or absurd tag is left out,
never an error: the image itself was already decoded.
"""

from __future__ import annotations

import datetime as dt
import io
import math
import re
from collections.abc import Mapping
from typing import Any

from PIL import Image, UnidentifiedImageError

from retrieval.errors import ImageDecodeError
from retrieval.imaging import EXIF_ORIENTATION, read_image_size

EXIF_IFD, GPS_IFD = 0x8769, 0x8825
MAKE, MODEL, DATETIME = 0x010F, 0x0110, 0x0132
DATETIME_ORIGINAL, DATETIME_DIGITIZED = 0x9003, 0x9004
OFFSET_ORIGINAL, OFFSET_DIGITIZED, OFFSET_DATETIME = 0x9011, 0x9012, 0x9010
GPS_LAT_REF, GPS_LAT, GPS_LON_REF, GPS_LON = 1, 2, 3, 4
MAX_TEXT = 128
_OFFSET = re.compile(r"[+-]\d{2}:\d{2}\Z")
_ERRORS = (OSError, ValueError, SyntaxError, EOFError, KeyError, IndexError, TypeError,
           ZeroDivisionError, OverflowError)


def photo_fields(data: bytes) -> dict[str, Any]:
    """The metadata fields of an image's bytes (see the module docstring); {} when unreadable."""
    try:
        width, height = read_image_size(data)
    except ImageDecodeError:
        return {}
    fields: dict[str, Any] = {"width": width, "height": height}
    try:
        with Image.open(io.BytesIO(data)) as header:
            if header.format == "PNG" and "exif" not in header.info:
                return fields  # Pillow would decode the whole PNG looking for a late eXIf
            exif = header.getexif()
            fields.update(exif_fields(exif, exif.get_ifd(EXIF_IFD), exif.get_ifd(GPS_IFD)))
    except (UnidentifiedImageError, *_ERRORS):
        return fields
    return fields


def exif_fields(
    ifd0: Mapping[int, Any], exif: Mapping[int, Any], gps: Mapping[int, Any]
) -> dict[str, Any]:
    """Orientation, date taken, camera and GPS position from the EXIF directories."""
    fields: dict[str, Any] = {}
    orientation = ifd0.get(EXIF_ORIENTATION)
    if isinstance(orientation, int) and 1 <= orientation <= 8:
        fields["orientation"] = orientation
    taken = (
        _date(exif.get(DATETIME_ORIGINAL), exif.get(OFFSET_ORIGINAL))
        or _date(exif.get(DATETIME_DIGITIZED), exif.get(OFFSET_DIGITIZED))
        or _date(ifd0.get(DATETIME), exif.get(OFFSET_DATETIME))
    )
    if taken:
        fields["taken"] = taken
    for key, tag in (("camera_make", MAKE), ("camera_model", MODEL)):
        text = _text(ifd0.get(tag))
        if text:
            fields[key] = text
    lat = _degrees(gps.get(GPS_LAT), gps.get(GPS_LAT_REF), "S", 90.0)
    lon = _degrees(gps.get(GPS_LON), gps.get(GPS_LON_REF), "W", 180.0)
    if lat is not None and lon is not None:
        fields["gps_lat"], fields["gps_lon"] = lat, lon
    return fields


def _text(value: Any) -> str:
    """An EXIF ASCII value as trimmed text ('' when missing or not text)."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return ""
    text = "".join(ch for ch in value.replace("\x00", " ") if ch.isprintable()).strip()
    return " ".join(text.split())[:MAX_TEXT]


def _date(value: Any, offset: Any) -> str | None:
    """``YYYY:MM:DD HH:MM:SS`` (EXIF) as ISO-8601, with a valid offset appended; None if invalid."""
    text = _text(value)
    try:
        moment = dt.datetime.strptime(text[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    iso = moment.isoformat()
    zone = _text(offset)
    return iso + zone if _OFFSET.match(zone) else iso


def _degrees(value: Any, ref: Any, negative: str, limit: float) -> float | None:
    """Degrees, minutes, seconds (EXIF rationals) as signed decimal degrees; None if invalid."""
    if not isinstance(value, tuple | list) or len(value) != 3:
        return None
    try:
        degrees, minutes, seconds = (float(part) for part in value)
    except _ERRORS:
        return None
    total = degrees + minutes / 60.0 + seconds / 3600.0
    if not math.isfinite(total) or not 0.0 <= total <= limit:
        return None
    if _text(ref).upper().startswith(negative):
        total = -total
    return round(total, 7)
