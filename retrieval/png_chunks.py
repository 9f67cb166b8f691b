"""PNG colour profiles dropped before OpenCV decodes (it ignores them; libpng warns about bad ones).

OpenCV installs no libpng warning handler, so a PNG whose ``iCCP`` chunk libpng dislikes (the
common "known incorrect sRGB profile", or a truncated one) prints ``libpng warning: ...`` on the
process's stderr at every decode: in the CLI's output and in the server's logs. The profile does
not change the pixels OpenCV returns, so the chunk is removed from the bytes handed to it.
"""

from __future__ import annotations

import struct

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DROPPED_CHUNKS = frozenset({b"iCCP"})
_HEADER = struct.Struct(">I4s")  # a chunk's data length and type; 4 bytes of CRC follow its data


def without_color_profile(data: bytes) -> bytes:
    """``data`` without its ``iCCP`` chunk when it is a PNG that has one, else ``data`` itself."""
    if not data.startswith(PNG_SIGNATURE):
        return data
    kept: list[bytes] = [PNG_SIGNATURE]
    dropped = False
    pos = len(PNG_SIGNATURE)
    while pos + _HEADER.size <= len(data):
        length, kind = _HEADER.unpack_from(data, pos)
        end = pos + _HEADER.size + length + 4
        if kind == b"IDAT" or end > len(data):
            break  # a profile comes before the image data; the rest is kept as it is
        if kind in DROPPED_CHUNKS:
            dropped = True
        else:
            kept.append(data[pos:end])
        pos = end
    if not dropped:
        return data
    kept.append(data[pos:])
    return b"".join(kept)
