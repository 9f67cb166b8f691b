"""The SSRF guard: IPv6 forms that embed IPv4 are judged by the IPv4 inside, non-global ranges
are refused, and fetches connect only to the address that was checked."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from fastapi.testclient import TestClient

from retrieval.api.errors import ApiError
from retrieval.api.images import fetch_image
from retrieval.api.url_guard import PinnedUrl, check_peer, is_public_address, pin_url
from tests.api.helpers import error_of

REFUSED = [
    # the findings: IPv6 forms that embed loopback/link-local IPv4, and site-local
    "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "2002:7f00:1::", "::127.0.0.1",
    "::ffff:0:7f00:1", "fec0::1",
    # IPv4-mapped, Teredo (server 0.0.0.0 / client 127.0.0.1), local-use NAT64, 6to4 private
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "2001::1", "2001:0:4136:e378:8000:63bf:80ff:fffe",
    "64:ff9b:1::808:808", "2002:c0a8:101::1", "2002:a9fe:a9fe::",
    # plain non-global ranges
    "127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1",
    "0.0.0.0", "255.255.255.255", "224.0.0.1", "198.18.0.1", "::", "::1", "fe80::1%eth0",
    "fc00::1", "fd12:3456::1", "ff02::1", "2001:db8::1", "100::1", "::8.8.8.8",
    "::ffff:0:808:808", "not an address",
]
ALLOWED = [
    "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "2a00:1450:4001:800::200e",
    "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1",
]


@pytest.mark.parametrize("address", REFUSED)
def test_non_global_addresses_are_refused(address: str) -> None:
    assert not is_public_address(address)


@pytest.mark.parametrize("address", ALLOWED)
def test_global_addresses_are_allowed(address: str) -> None:
    assert is_public_address(address)


@pytest.mark.parametrize(
    "host", ["[64:ff9b::7f00:1]", "[64:ff9b::a9fe:a9fe]", "[2002:7f00:1::]", "[::127.0.0.1]",
             "[::ffff:0:7f00:1]", "[fec0::1]"],
)
def test_embedded_loopback_urls_are_refused_end_to_end(client: TestClient, host: str) -> None:
    response = client.post("/search/image", json={"url": f"http://{host}:8080/cat.jpg"})
    assert response.status_code == 422, response.text
    assert error_of(response)["type"] == "url_not_allowed"


class _Echo(BaseHTTPRequestHandler):
    seen: list[tuple[str, str]] = []  # noqa: RUF012 - (path, Host header) per request

    def do_GET(self) -> None:
        self.seen.append((self.path, self.headers.get("Host", "")))
        if self.path == "/hop":
            self.send_response(302)
            self.send_header("Location", "/img?x=1")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = b"\x89PNG fake"
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture(scope="module")
def echo_port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def test_a_fetch_connects_to_the_checked_address_with_the_host_name(echo_port: int) -> None:
    """With private hosts allowed, 'localhost' is resolved once, pinned, and named in Host."""
    _Echo.seen.clear()
    url = f"http://localhost:{echo_port}/hop"
    data = asyncio.run(fetch_image(url, max_bytes=1000, allow_private=True))
    assert data == b"\x89PNG fake"
    host = f"localhost:{echo_port}"
    assert _Echo.seen == [("/hop", host), ("/img?x=1", host)]


def test_pinned_urls_name_the_address_and_keep_the_name_for_tls() -> None:
    async def pin() -> list[PinnedUrl]:
        return await pin_url("https://localhost:8443/a/b.jpg?q=1", lambda address: True)

    pinned = asyncio.run(pin())
    assert pinned and {p.address for p in pinned} <= {"127.0.0.1", "::1"}
    for target in pinned:
        assert target.url.host == target.address and target.url.path == "/a/b.jpg"
        assert target.url.query == b"q=1" and target.url.port == 8443
        assert target.host_header == "localhost:8443"
        assert target.request_extensions() == {"sni_hostname": "localhost"}
    with pytest.raises(ApiError) as refused:
        asyncio.run(pin_url("http://localhost/x.jpg", is_public_address))
    assert refused.value.type == "url_not_allowed"


def test_the_connected_peer_is_checked(echo_port: int) -> None:
    """A response whose socket peer is not the pinned, allowed address is refused."""

    async def fetch(expected: str, allowed: bool) -> None:
        target = PinnedUrl(url=httpx.URL(f"http://127.0.0.1:{echo_port}/img"), address=expected,
                           host_header="example.test", server_name=None)
        async with httpx.AsyncClient(trust_env=False) as http, http.stream("GET", target.url) as r:
            check_peer(r, target, lambda address: allowed)

    asyncio.run(fetch("127.0.0.1", allowed=True))
    for expected, allowed in (("127.0.0.2", True), ("127.0.0.1", False)):
        with pytest.raises(ApiError) as caught:
            asyncio.run(fetch(expected, allowed))
        assert caught.value.type == "url_not_allowed"
