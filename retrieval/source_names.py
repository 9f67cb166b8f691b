"""Sources whose file names are not valid UTF-8, stored losslessly and found again.

A POSIX file name is bytes. Python decodes one that is not UTF-8 with surrogate escapes
(``b'lat\\xe9in1.png'`` -> ``'lat\\udce9in1.png'``), which no store can hold. Such a source
is stored as text with U+FFFD for each undecodable byte (``'lat\\ufffdin1.png'``, what a search
shows) and its exact bytes, base64-encoded, under the metadata key ``source_b64``;
``local_source`` turns the stored row back into the name to open. A ``source_b64`` that does
not belong to the row's source (written by hand, say) is ignored: a row only opens its own file.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from typing import Any

SOURCE_BYTES_KEY = "source_b64"


def is_valid_text(text: str) -> bool:
    """Whether text can be stored as UTF-8 (no surrogate escapes)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def display_text(text: str) -> str:
    """Text as stored and shown: each undecodable byte (or lone surrogate) becomes U+FFFD."""
    if is_valid_text(text):
        return text
    return _raw(text).decode("utf-8", "replace")


def source_bytes(source: str) -> str | None:
    """The base64 of a source's exact bytes when it is not valid UTF-8, else None."""
    if is_valid_text(source):
        return None
    return base64.b64encode(_raw(source)).decode("ascii")


def storable(source: str, metadata: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """(source text to store, metadata with ``source_b64`` added for a non-UTF-8 source)."""
    fields = dict(metadata)
    encoded = source_bytes(source)
    if encoded is None:
        return source, fields
    fields[SOURCE_BYTES_KEY] = encoded
    return display_text(source), fields


def local_source(source: str, metadata: Mapping[str, Any]) -> str:
    """The name to open for a stored row: decoded from ``source_b64`` when it is the row's own."""
    encoded = metadata.get(SOURCE_BYTES_KEY)
    if not isinstance(encoded, str):
        return source
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return source
    original = os.fsdecode(raw)
    return original if display_text(original) == source else source


def _raw(text: str) -> bytes:
    """The bytes a name decoded with surrogate escapes came from (lone surrogates kept as is)."""
    try:
        return os.fsencode(text)
    except UnicodeEncodeError:  # a surrogate no decoding produced: keep it visible as U+FFFD
        return text.encode("utf-8", "surrogatepass")
