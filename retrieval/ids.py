"""Stable ids: the same bytes always give the same id."""

from __future__ import annotations

import hashlib

ID_HEX_CHARS = 32
MAX_ID_LENGTH = 128


def content_id(data: bytes) -> str:
    """Return the 32-hex-char BLAKE2b digest of the content."""
    return hashlib.blake2b(data, digest_size=ID_HEX_CHARS // 2).hexdigest()
