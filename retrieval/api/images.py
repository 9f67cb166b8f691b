"""Image bytes in and out of the API: query decoding, guarded URL fetching, originals, thumbnails.

Serving reads only ``Record.source`` of a stored record (never a path from the client):

* a local file is read if it is still a regular file and an image Pillow recognises;
* ``<video path>#t=<seconds>`` is a video frame, extracted with OpenCV and served as JPEG;
* an ``http(s)://`` source is answered with a redirect for the original, and fetched (with the
  same guards as query URLs) for a thumbnail.

Thumbnails are JPEGs whose longest side is ``size`` (never upscaled), cached on disk under a
name hashed from collection, id, source, file size/mtime and size, written atomically.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import re
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import cv2
import httpx
import numpy as np
from PIL import Image, UnidentifiedImageError

from retrieval.api.errors import ApiError
from retrieval.api.url_guard import AddressPolicy, PinnedUrl, check_peer, pin_url, policy
from retrieval.errors import ImageDecodeError
from retrieval.imaging import decode_image
from retrieval.source_names import local_source
from retrieval.types import Record

FETCH_TIMEOUT_S = 10.0
MAX_REDIRECTS = 3
MAX_SERVE_BYTES = 256 * 1024 * 1024
THUMBNAIL_QUALITY = 85
_VIDEO_FRAME = re.compile(r"(?P<path>.+)#t=(?P<seconds>\d+(?:\.\d+)?)\Z")
_REMOTE = ("http://", "https://")


@dataclass(frozen=True)
class ImageBytes:
    """Bytes to send and their media type."""

    data: bytes
    media_type: str


def decode_query_image(data: bytes, max_pixels: int, min_side: int | None = None) -> np.ndarray:
    """Decode an uploaded or fetched query image, reduced early when big (``min_side``): 415
    if it is not an image, 422 if unusable."""
    try:
        return decode_image(data, max_pixels=max_pixels, min_side=min_side, reduce=True)
    except ImageDecodeError as exc:
        if isinstance(exc.__cause__, UnidentifiedImageError):
            raise ApiError(
                415, f"the file is not a supported image: {exc}", type="unsupported_media_type"
            ) from exc
        raise ApiError(422, f"unusable image: {exc}", type="invalid_image") from exc


# ----- fetching query images by URL (SSRF-guarded, see url_guard) ----------------------------


async def fetch_image(url: str, *, max_bytes: int, allow_private: bool) -> bytes:
    """GET an image URL: each hop resolved once and pinned to its checked addresses, redirects
    re-checked, the connected peer checked, content type image/*, size capped while streaming."""
    try:
        return await asyncio.wait_for(
            _fetch(url, max_bytes=max_bytes, allowed=policy(allow_private)),
            timeout=FETCH_TIMEOUT_S * 2,
        )
    except asyncio.TimeoutError as exc:
        raise ApiError(422, "fetching the image URL timed out", type="url_fetch_failed") from exc


async def _fetch(url: str, *, max_bytes: int, allowed: AddressPolicy) -> bytes:
    current = url
    timeout = httpx.Timeout(FETCH_TIMEOUT_S)
    # No kept-alive connections: a pooled one to the same address may carry another name.
    limits = httpx.Limits(max_keepalive_connections=0)
    client = httpx.AsyncClient(
        timeout=timeout, limits=limits, follow_redirects=False, trust_env=False
    )
    async with client:
        for _ in range(MAX_REDIRECTS + 1):
            targets = await pin_url(current, allowed)
            location, data = await _fetch_pinned(client, targets, allowed, max_bytes)
            if location is None:
                return data
            current = urljoin(current, location)
    raise ApiError(422, f"more than {MAX_REDIRECTS} redirects", type="url_fetch_failed")


async def _fetch_pinned(
    client: httpx.AsyncClient, targets: list[PinnedUrl], allowed: AddressPolicy, max_bytes: int
) -> tuple[str | None, bytes]:
    """(redirect location, b"") or (None, the image bytes), from the first address that
    connects."""
    failure: httpx.HTTPError | None = None
    for target in targets:
        headers = {"Accept": "image/*", "Host": target.host_header}
        try:
            async with client.stream(
                "GET", target.url, headers=headers, extensions=target.request_extensions()
            ) as resp:
                check_peer(resp, target, allowed)
                if resp.is_redirect and "location" in resp.headers:
                    return resp.headers["location"], b""
                return None, await _read_image_response(resp, max_bytes)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            failure = exc  # the next checked address, if any
        except httpx.HTTPError as exc:
            failure = exc
            break
    name = type(failure).__name__ if failure is not None else "no address"
    raise ApiError(422, f"cannot fetch the image URL: {name}", type="url_fetch_failed")


async def _read_image_response(resp: httpx.Response, max_bytes: int) -> bytes:
    """Check status, type and size of a fetched response, then read it (capped)."""
    if resp.status_code != 200:
        raise ApiError(
            422, f"the image URL answered HTTP {resp.status_code}", type="url_fetch_failed"
        )
    media = resp.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if not media.startswith("image/"):
        raise ApiError(
            415, f"the URL is not an image (content type {media or 'missing'!r})",
            type="unsupported_media_type",
        )
    declared = resp.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise ApiError(413, f"the image is {declared} bytes, over the cap of {max_bytes}")
    data = bytearray()
    async for chunk in resp.aiter_bytes():
        data += chunk
        if len(data) > max_bytes:
            raise ApiError(413, f"the image is over the cap of {max_bytes} bytes")
    return bytes(data)


# ----- originals and thumbnails of stored records -------------------------------------------


def remote_source(record: Record) -> str | None:
    """The http(s) URL a record came from, or None for files."""
    return record.source if record.source.startswith(_REMOTE) else None


def _video_frame(source: str) -> tuple[str, float] | None:
    """(video path, seconds) for a ``path#t=12.5`` source, else None."""
    match = _VIDEO_FRAME.match(source)
    if match is None:
        return None
    return match["path"], float(match["seconds"])


def _gone(record: Record, why: str) -> ApiError:
    return ApiError(410, f"the source of item {record.id!r} {why}", type="source_gone")


def _read_regular_file(record: Record, path: str) -> bytes:
    """Read the stored path if it is (still) a regular file of a servable size."""
    try:  # O_NONBLOCK: a FIFO put in the file's place must not hang the worker
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise _gone(record, "is no longer a regular file")
            if info.st_size > MAX_SERVE_BYTES:
                raise _gone(record, f"is over {MAX_SERVE_BYTES} bytes")
            return handle.read(MAX_SERVE_BYTES + 1)
    except OSError as exc:
        raise _gone(record, f"cannot be read ({exc.strerror or 'I/O error'})") from exc


def _extract_frame(record: Record, path: str, seconds: float) -> bytes:
    """One video frame as JPEG bytes (by the ingested frame index when known, else by time)."""
    if not os.path.isfile(path):
        raise _gone(record, "video is missing")
    index = record.metadata.get("frame")
    capture = cv2.VideoCapture(path)
    try:
        if not capture.isOpened():
            raise _gone(record, "video cannot be opened")
        if isinstance(index, int) and not isinstance(index, bool) and index >= 0:
            capture.set(cv2.CAP_PROP_POS_FRAMES, float(index))
        else:
            capture.set(cv2.CAP_PROP_POS_MSEC, seconds * 1000.0)
        ok, frame = capture.read()
    finally:
        capture.release()
    if not ok or frame is None:
        raise _gone(record, f"video has no frame at {seconds}s")
    ok, encoded = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 95])
    if not ok:
        raise _gone(record, "video frame cannot be encoded")
    return encoded.tobytes()


def _media_type(record: Record, data: bytes) -> str:
    """The MIME type Pillow recognises from the bytes; 410 when they are not an image."""
    try:
        with Image.open(io.BytesIO(data)) as header:
            fmt = header.format or ""
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise _gone(record, "is no longer a recognisable image") from exc
    return Image.MIME.get(fmt, "application/octet-stream")


def read_original(record: Record) -> ImageBytes:
    """The stored item's bytes (file or video frame) and media type (blocking: use a thread)."""
    source = local_source(record.source, record.metadata)  # a non-UTF-8 name's exact bytes
    frame = _video_frame(source)
    if frame is not None and not os.path.isfile(source):
        return ImageBytes(_extract_frame(record, *frame), "image/jpeg")
    data = _read_regular_file(record, source)
    return ImageBytes(data, _media_type(record, data))


def make_thumbnail(data: bytes, size: int, max_pixels: int) -> bytes:
    """A JPEG whose longest side is at most ``size`` pixels."""
    rgb = decode_image(data, max_pixels=max_pixels, min_side=2 * size, reduce=True)
    height, width = rgb.shape[:2]
    scale = min(1.0, size / max(height, width))
    if scale < 1.0:
        shape = (max(1, round(width * scale)), max(1, round(height * scale)))
        rgb = cv2.resize(rgb, shape, interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(
        ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, THUMBNAIL_QUALITY]
    )
    if not ok:
        raise ImageDecodeError("thumbnail could not be encoded")
    return encoded.tobytes()


class ThumbnailCache:
    """JPEG thumbnails on disk, keyed by a hash (client text never becomes a path)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path_for(self, collection: str, record: Record, size: int) -> Path:
        """Cache file of one record at one size (changes when the source file changes)."""
        stamp = ""
        if remote_source(record) is None:
            source = local_source(record.source, record.metadata)
            frame = _video_frame(source)
            target = frame[0] if frame and not os.path.isfile(source) else source
            try:
                info = os.stat(target)
                stamp = f"{info.st_size}:{info.st_mtime_ns}"
            except OSError:
                stamp = "missing"
        key = "\0".join((collection, record.id, record.source, stamp, str(size)))
        digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
        return self.directory / digest[:2] / f"{digest}.jpg"

    def get(self, path: Path) -> bytes | None:
        """Cached bytes, or None."""
        try:
            return path.read_bytes()
        except OSError:
            return None

    def put(self, path: Path, data: bytes) -> None:
        """Write atomically (temp file + rename); a failing cache is only a missed cache."""
        tmp: str | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except OSError:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)


def default_thumbnail_dir(uri: str, configured: Path | None) -> Path:
    """settings.thumbnail_dir, else ``<db>.thumbnails`` next to a Lite file, else a temp dir."""
    if configured is not None:
        return Path(configured).expanduser()
    from retrieval.stores import is_local_uri

    if is_local_uri(uri):
        db = Path(uri.strip()).expanduser().resolve()
        return db.parent / f"{db.stem}.thumbnails"
    return Path(tempfile.gettempdir()) / "mmrag-thumbnails"
