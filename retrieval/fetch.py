"""Fetch image URLs: one shared httpx client, per-attempt deadline, retries, size and type caps.

* http and https only; redirects are followed (at most 5).
* Retried with exponential backoff (``backoff_s * 2**attempt``, jittered, at most
  ``max_backoff_s``; a 429/503 ``Retry-After`` in seconds is honoured up to that cap): connection
  errors, timeouts, HTTP 429 and 5xx. Other statuses (404, 403, ...) fail at once.
* ``timeout_s`` bounds each attempt as a whole (connect, headers and the full body).
* Bodies over ``max_bytes`` are refused from ``Content-Length`` or while streaming.
* ``Content-Type`` must be ``image/*``; ``application/octet-stream`` (or none) is accepted
  only when the bytes start like a known image format.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass

import httpx

from retrieval.image_rows import DEFAULT_MAX_BYTES

USER_AGENT = "mmrag-ingest/0.1"
MAX_REDIRECTS = 5
_OCTET = ("application/octet-stream", "binary/octet-stream", "")
_MAGIC = (
    b"\xff\xd8\xff",  # JPEG
    b"\x89PNG\r\n\x1a\n",
    b"GIF87a",
    b"GIF89a",
    b"BM",
    b"II*\x00",  # TIFF little-endian
    b"MM\x00*",  # TIFF big-endian
)


class FetchError(Exception):
    """A URL that did not yield image bytes; the message is the one-line reject reason."""


class _Retryable(FetchError):
    """A failure worth another attempt (optionally with the server's Retry-After)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class FetchOptions:
    """Timeouts, retries and caps of URL fetching."""

    timeout_s: float = 30.0
    retries: int = 3
    backoff_s: float = 0.5
    max_backoff_s: float = 10.0
    max_bytes: int = DEFAULT_MAX_BYTES


def looks_like_image(data: bytes) -> bool:
    """Whether the bytes start with the signature of an image format mmrag decodes."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return True
    return data.startswith(_MAGIC)


class Fetcher:
    """Downloads image bytes; thread-safe (one connection pool shared by the fetch workers)."""

    def __init__(self, options: FetchOptions | None = None, connections: int = 16) -> None:
        self.options = options or FetchOptions()
        self._client = httpx.Client(
            timeout=httpx.Timeout(self.options.timeout_s),
            follow_redirects=True,
            max_redirects=MAX_REDIRECTS,
            limits=httpx.Limits(
                max_connections=connections, max_keepalive_connections=connections
            ),
            headers={"User-Agent": USER_AGENT, "Accept": "image/*"},
        )
        self._rng = random.Random()
        self._rng_lock = threading.Lock()

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fetch(self, url: str) -> bytes:
        """The image bytes at url, or FetchError with a one-line reason."""
        opts = self.options
        attempts = opts.retries + 1
        for attempt in range(attempts):
            try:
                return self._attempt(url)
            except _Retryable as exc:
                if attempt + 1 >= attempts:
                    raise FetchError(f"{exc} (gave up after {attempts} attempts)") from None
                time.sleep(self._delay(attempt, exc.retry_after))
        raise FetchError("no attempt was made")  # unreachable: attempts >= 1

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before the next attempt."""
        opts = self.options
        if retry_after is not None:
            return min(max(retry_after, 0.0), opts.max_backoff_s)
        with self._rng_lock:
            jitter = self._rng.uniform(0.5, 1.0)
        return min(opts.backoff_s * (2**attempt) * jitter, opts.max_backoff_s)

    def _attempt(self, url: str) -> bytes:
        """One GET with the whole-attempt deadline; raises _Retryable or FetchError."""
        opts = self.options
        deadline = time.monotonic() + opts.timeout_s
        try:
            with self._client.stream("GET", url) as response:
                _check_status(response)
                ctype = response.headers.get("content-type", "").split(";")[0].strip().lower()
                if not ctype.startswith("image/") and ctype not in _OCTET:
                    raise FetchError(f"content-type {ctype!r} is not an image")
                _check_length(response.headers.get("content-length"), opts.max_bytes)
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > opts.max_bytes:
                        raise FetchError(f"body is over the cap of {opts.max_bytes} bytes")
                    if time.monotonic() > deadline:
                        raise _Retryable(f"timed out after {opts.timeout_s:g}s (body too slow)")
        except httpx.UnsupportedProtocol as exc:
            raise FetchError(f"unsupported URL: {exc}") from None
        except httpx.TimeoutException:
            raise _Retryable(f"timed out after {opts.timeout_s:g}s") from None
        except httpx.TooManyRedirects:
            raise FetchError(f"more than {MAX_REDIRECTS} redirects") from None
        except httpx.TransportError as exc:
            reason = " ".join(str(exc).split())[:200] or type(exc).__name__
            raise _Retryable(f"connection failed: {reason}") from None
        except httpx.InvalidURL as exc:
            raise FetchError(f"invalid URL: {exc}") from None
        if not body:
            raise FetchError("empty body (0 bytes)")
        if not ctype.startswith("image/") and not looks_like_image(bytes(body[:16])):
            raise FetchError(f"content-type {ctype or 'missing'!r} and the bytes are not an image")
        return bytes(body)


def _check_status(response: httpx.Response) -> None:
    """Raise for non-2xx: retryable for 429 and 5xx, final for the rest."""
    code = response.status_code
    if 200 <= code < 300:
        return
    reason = f"HTTP {code} {response.reason_phrase}".strip()
    if code == 429 or code >= 500:
        raise _Retryable(reason, _retry_after(response.headers.get("retry-after")))
    raise FetchError(reason)


def _check_length(header: str | None, max_bytes: int) -> None:
    """Refuse a declared Content-Length over the cap before reading the body."""
    if header is None:
        return
    try:
        length = int(header)
    except ValueError:
        return
    if length > max_bytes:
        raise FetchError(f"body is {length} bytes, over the cap of {max_bytes}")


def _retry_after(header: str | None) -> float | None:
    """A Retry-After header in seconds (HTTP dates are ignored)."""
    if header is None:
        return None
    try:
        return float(header.strip())
    except ValueError:
        return None
