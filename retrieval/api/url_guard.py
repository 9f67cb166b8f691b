"""The SSRF guard of URL fetches: which addresses are public, and connections pinned to them.

A URL's host is resolved once; every address it resolves to must be public (unless private
hosts are allowed), and the fetch then connects to one of those checked addresses itself (the
URL's host replaced by the address, the original name sent as ``Host`` and, for https, as the
TLS server name, so certificates are still checked against the name). The peer address of the
connection is checked again once connected. A second DNS answer (rebinding) is never used.

"Public" is ``is_global`` after unwrapping the IPv6 forms that carry an IPv4 address: IPv4-mapped
(``::ffff:a.b.c.d``), NAT64 (``64:ff9b::/96``), 6to4 (``2002::/16``) and Teredo (``2001::/32``,
server and client) are judged by the IPv4 address inside; IPv4-compatible (``::a.b.c.d``) and
IPv4-translated (``::ffff:0:a.b.c.d``) addresses, site-local ``fec0::/10``, local-use NAT64
(``64:ff9b:1::/48``) and multicast are never public, whatever the Python version says.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from urllib.parse import urlsplit

import httpx

from retrieval.api.errors import ApiError

AddressPolicy = Callable[[str], bool]

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NEVER_PUBLIC_V6 = tuple(
    ipaddress.ip_network(net)
    for net in (
        "::/96",  # IPv4-compatible (deprecated), also :: and ::1
        "::ffff:0:0:0/96",  # IPv4-translated (SIIT)
        "64:ff9b:1::/48",  # local-use NAT64
        "fec0::/10",  # site-local (deprecated)
        "fc00::/7",  # unique local
        "fe80::/10",  # link-local
        "100::/64",  # discard-only
        "2001:db8::/32",  # documentation
        "ff00::/8",  # multicast
    )
)
_SCHEME_PORTS = {"http": 80, "https": 443}


def _public_v4(ip: IPv4Address) -> bool:
    return ip.is_global and not ip.is_multicast


def embedded_ipv4(ip: IPv6Address) -> list[IPv4Address]:
    """The IPv4 addresses an IPv6 address carries by a transition mechanism (maybe none)."""
    if ip.ipv4_mapped is not None:
        return [ip.ipv4_mapped]
    if ip in _NAT64:
        return [IPv4Address(int(ip) & 0xFFFFFFFF)]
    if ip.sixtofour is not None:
        return [ip.sixtofour]
    if ip.teredo is not None:
        return list(ip.teredo)
    return []


def is_public_address(address: str) -> bool:
    """Whether an IP address (text, maybe with a ``%zone``) is globally routable."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, IPv4Address):
        return _public_v4(ip)
    embedded = embedded_ipv4(ip)
    if embedded:
        return all(_public_v4(inner) for inner in embedded)
    if any(ip in net for net in _NEVER_PUBLIC_V6):
        return False
    return ip.is_global


def any_address(address: str) -> bool:
    """The policy when private hosts are allowed (MMRAG_ALLOW_PRIVATE_URLS=true)."""
    return True


def policy(allow_private: bool) -> AddressPolicy:
    """Which addresses a fetch may connect to."""
    return any_address if allow_private else is_public_address


@dataclass(frozen=True)
class PinnedUrl:
    """A URL to fetch from one checked address, and how to name the host to the server."""

    url: httpx.URL  # the URL with its host replaced by ``address``
    address: str
    host_header: str  # the original host[:port], sent as Host
    server_name: str | None  # the TLS server name (https with a host name), else None

    def request_extensions(self) -> dict[str, str]:
        """httpx request extensions: the TLS server name for https."""
        return {"sni_hostname": self.server_name} if self.server_name else {}


def check_url_shape(url: str) -> httpx.URL:
    """Refuse URLs that are not http(s), have no host, or carry credentials (422)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
        parsed = httpx.URL(url)
    except (ValueError, httpx.InvalidURL) as exc:
        raise ApiError(422, f"invalid URL: {exc}", type="invalid_url") from exc
    if parts.scheme not in _SCHEME_PORTS:
        raise ApiError(422, "only http and https URLs can be fetched", type="invalid_url")
    if not parts.hostname or not parsed.host:
        raise ApiError(422, "the URL has no host", type="invalid_url")
    if parts.username is not None or parts.password is not None:
        raise ApiError(422, "URLs with credentials are not accepted", type="invalid_url")
    return parsed


async def pin_url(url: str, allowed: AddressPolicy) -> list[PinnedUrl]:
    """Resolve the URL's host once and pin it to each address; 422 when any is not allowed."""
    parsed = check_url_shape(url)
    host = parsed.host
    port = parsed.port or _SCHEME_PORTS[parsed.scheme]
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise ApiError(422, f"cannot resolve host {host!r}", type="invalid_url") from exc
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses or not all(allowed(a) for a in addresses):
        raise refused(host)
    literal = _is_ip_literal(host)
    netloc = parsed.netloc.decode("ascii")
    return [
        PinnedUrl(
            url=parsed.copy_with(host=address.split("%", 1)[0]),
            address=address,
            host_header=netloc,
            server_name=None if literal or parsed.scheme != "https" else host,
        )
        for address in addresses
    ]


def check_peer(response: httpx.Response, pinned: PinnedUrl, allowed: AddressPolicy) -> None:
    """Refuse a response whose connection's peer is not the pinned, allowed address."""
    stream = response.extensions.get("network_stream")
    peer = stream.get_extra_info("server_addr") if stream is not None else None
    if not peer:
        raise ApiError(
            422, "cannot tell which address the image URL connected to", type="url_fetch_failed"
        )
    address = str(peer[0])
    if not allowed(address) or not _same_address(address, pinned.address):
        raise refused(pinned.host_header)


def refused(host: str) -> ApiError:
    """The 422 for a host that is (or connected to) a non-public address."""
    return ApiError(
        422,
        f"refusing to fetch {host!r}: it resolves to a loopback, private or reserved address "
        "(set MMRAG_ALLOW_PRIVATE_URLS=true to allow)",
        type="url_not_allowed",
    )


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


def _same_address(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_address(a.split("%", 1)[0]) == ipaddress.ip_address(b.split("%", 1)[0])
    except ValueError:
        return False
