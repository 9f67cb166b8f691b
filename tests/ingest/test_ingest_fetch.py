"""URL fetching against a real HTTP server on loopback: caps, types, timeouts and retries."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from ingest.fetch import Fetcher, FetchError, FetchOptions, looks_like_image
from tests.ingest.helpers import ImageServer, Route, noise_jpeg, serve

JPEG = noise_jpeg(1)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


@pytest.fixture(scope="module")
def server() -> Iterator[ImageServer]:
    yield from serve(
        {
            "/good.jpg": Route(body=JPEG),
            "/octet.jpg": Route(body=JPEG, content_type="application/octet-stream"),
            "/untyped.png": Route(body=PNG_MAGIC, content_type=None),
            "/octet.txt": Route(body=b"hello world", content_type="application/octet-stream"),
            "/page.html": Route(body=b"<html></html>", content_type="text/html; charset=utf-8"),
            "/slow.jpg": Route(body=JPEG, delay_s=1.5),
            "/big.jpg": Route(body=b"\xff\xd8\xff" + b"0" * 5000),
            "/big-chunked.jpg": Route(body=b"\xff\xd8\xff" + b"0" * 5000, send_length=False),
            "/flaky.jpg": Route(body=JPEG, fail_first=2),
            "/down.jpg": Route(body=JPEG, fail_first=100),
            "/forbidden.jpg": Route(status=403, body=b"no"),
            "/empty.jpg": Route(body=b""),
            "/limited.jpg": Route(status=429, body=b"", headers={"Retry-After": "0"}),
            "/moved.jpg": Route(status=302, body=b"", headers={"Location": "/good.jpg"}),
        }
    )


@pytest.fixture(scope="module")
def fetcher() -> Iterator[Fetcher]:
    options = FetchOptions(timeout_s=0.5, retries=2, backoff_s=0.01, max_bytes=4096)
    with Fetcher(options, connections=4) as f:
        yield f


@pytest.mark.parametrize("path", ["/good.jpg", "/octet.jpg", "/untyped.png", "/moved.jpg"])
def test_images_are_fetched(server: ImageServer, fetcher: Fetcher, path: str) -> None:
    data = fetcher.fetch(server.url(path))
    assert data == (PNG_MAGIC if path == "/untyped.png" else JPEG)


@pytest.mark.parametrize(
    ("path", "reason", "hits"),
    [
        ("/missing.jpg", "HTTP 404", 1),
        ("/forbidden.jpg", "HTTP 403", 1),
        ("/page.html", "content-type 'text/html' is not an image", 1),
        ("/octet.txt", "bytes are not an image", 1),
        ("/big.jpg", "5003 bytes, over the cap of 4096", 1),
        ("/big-chunked.jpg", "over the cap of 4096", 1),
        ("/empty.jpg", "empty body", 1),
        ("/down.jpg", "HTTP 503", 3),
        ("/limited.jpg", "HTTP 429", 3),
    ],
)
def test_failures_give_one_line_reasons_and_retry_only_transient_ones(
    server: ImageServer, fetcher: Fetcher, path: str, reason: str, hits: int
) -> None:
    before = server.hits[path]
    with pytest.raises(FetchError) as err:
        fetcher.fetch(server.url(path))
    assert reason in str(err.value)
    assert "\n" not in str(err.value)
    assert server.hits[path] - before == hits


def test_flaky_endpoint_succeeds_on_the_third_attempt(
    server: ImageServer, fetcher: Fetcher
) -> None:
    assert fetcher.fetch(server.url("/flaky.jpg")) == JPEG
    assert server.hits["/flaky.jpg"] == 3


def test_slow_endpoint_times_out_after_retries(server: ImageServer, fetcher: Fetcher) -> None:
    started = time.monotonic()
    with pytest.raises(FetchError, match=r"timed out after 0.5s .*3 attempts"):
        fetcher.fetch(server.url("/slow.jpg"))
    assert time.monotonic() - started < 4.0


def test_refused_connection_and_bad_scheme(fetcher: Fetcher) -> None:
    with pytest.raises(FetchError, match="connection failed"):
        fetcher.fetch("http://127.0.0.1:9/x.jpg")
    with pytest.raises(FetchError, match="unsupported URL"):
        fetcher.fetch("ftp://127.0.0.1/x.jpg")


def test_magic_sniffing() -> None:
    assert looks_like_image(JPEG) and looks_like_image(PNG_MAGIC)
    assert looks_like_image(b"RIFF\x00\x00\x00\x00WEBPVP8 ")
    assert not looks_like_image(b"<html>") and not looks_like_image(b"")
