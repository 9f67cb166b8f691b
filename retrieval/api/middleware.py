"""Pure ASGI middleware: request metrics, API-key check, request body size cap."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterable

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from retrieval.api.docs import DOCS_ASSETS, DOCS_PATHS
from retrieval.api.errors import error_body
from retrieval.api.metrics import ApiMetrics
from retrieval.api.openai.errors import is_openai_path, openai_error_body
from retrieval.stores.owner_wire import PREFIX

PUBLIC_PATHS = frozenset({"/health"})
# The hidden routes other mmrag commands use on a served Lite file (routers/owner.py): they
# need the owner token, never the API key (an API key does not open them either).
OWNER_PREFIX = PREFIX + "/"
# The web UI's page and its static files (routers/ui.py) load without the key; the page then
# asks for the key and sends it on every data request. Only GET/HEAD, never a data route.
UI_PATHS = frozenset({"/"})
UI_PREFIX = "/static/"
KEY_MESSAGE = (
    "Request refused: missing or wrong API key. Send 'Authorization: Bearer <key>' or "
    "'X-API-Key: <key>'."
)


def _route_path(scope: Scope) -> str:
    """The request path without the app's root_path."""
    path = str(scope.get("path", ""))
    root = str(scope.get("root_path", ""))
    if root and path.startswith(root):
        path = path[len(root):] or "/"
    return path


async def send_json_error(
    send: Send, status: int, type_: str, message: str, headers: Iterable[tuple[str, str]] = (),
    *, scope: Scope | None = None,
) -> None:
    """Send a complete JSON error response: OpenAI's shape under /v1, the API's elsewhere."""
    if scope is not None and is_openai_path(_route_path(scope)):
        shaped = openai_error_body(status, message, type_)
    else:
        shaped = error_body(type_, message)
    body = json.dumps(shaped).encode("utf-8")
    raw = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode("ascii")),
        *((k.encode("latin-1"), v.encode("latin-1")) for k, v in headers),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def _is_ui_asset(scope: Scope, path: str) -> bool:
    """A GET/HEAD of the web page, the API docs pages, or one of their static files."""
    return scope.get("method") in ("GET", "HEAD") and (
        path in UI_PATHS or path.startswith(UI_PREFIX)
        or path in DOCS_PATHS or path.startswith(DOCS_ASSETS + "/")
    )


def api_key_matches(headers: Headers, expected: str) -> bool:
    """Whether ``Authorization: Bearer <key>`` or ``X-API-Key`` carries the key (constant time)."""
    want = hashlib.sha256(expected.encode("utf-8")).digest()
    supplied = []
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        supplied.append(token.strip())
    if headers.get("x-api-key"):
        supplied.append(headers["x-api-key"].strip())
    matched = False
    for value in supplied:  # header text is latin-1 decoded: recover the raw bytes
        digest = hashlib.sha256(value.encode("latin-1", "replace")).digest()
        matched |= hmac.compare_digest(digest, want)
    return matched


class ApiKeyMiddleware:
    """When a key is configured, every path but /health and the UI's and docs' pages needs it
    (the /_owner routes check the owner token themselves).

    The docs pages and the OpenAPI schema describe routes, not data: they load without the key
    (Swagger UI's Authorize button then sends it). Under /v1 the 401 is OpenAI's
    ``invalid_api_key``.
    """

    def __init__(self, app: ASGIApp, api_key: str | None) -> None:
        self.app = app
        self.api_key = api_key or None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.api_key is None
            or scope["type"] not in ("http", "websocket")
            or _route_path(scope) in PUBLIC_PATHS
            or _is_ui_asset(scope, _route_path(scope))
            or _route_path(scope).startswith(OWNER_PREFIX)
            or api_key_matches(Headers(scope=scope), self.api_key)
        ):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        openai = is_openai_path(_route_path(scope))
        await send_json_error(
            send, 401, "invalid_api_key" if openai else "unauthorized", KEY_MESSAGE,
            headers=[("www-authenticate", "Bearer")], scope=scope,
        )


class PayloadTooLarge(HTTPException):
    """The request body went over the cap (an HTTPException, so FastAPI re-raises it as is)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body is over the cap of {limit} bytes")


class BodyLimitMiddleware:
    """Refuse bodies over ``max_bytes``: by Content-Length up front, else while streaming.

    ``larger`` gives some paths their own cap (``POST /ingest`` takes many files at once)."""

    def __init__(
        self, app: ASGIApp, max_bytes: int, larger: dict[str, int] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.larger = dict(larger or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cap = self.larger.get(_route_path(scope), self.max_bytes)
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            await send_json_error(
                send, 413, "payload_too_large",
                f"request body of {declared} bytes is over the cap of {cap}",
                headers=[("connection", "close")], scope=scope,
            )
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > cap:
                    raise PayloadTooLarge(cap)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except PayloadTooLarge as exc:
            if started:
                raise
            await send_json_error(send, 413, "payload_too_large", str(exc.detail), scope=scope)


class MetricsMiddleware:
    """Counts requests and observes latency per method and route template."""

    def __init__(
        self, app: ASGIApp, metrics: ApiMetrics, routes: Callable[[], list[BaseRoute]]
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes

    def _route(self, scope: Scope) -> str:
        route = scope.get("route")
        path = getattr(route, "path", None)
        if isinstance(path, str):
            return path
        for candidate in self.routes():  # e.g. refused before routing (401, 413)
            match, _ = candidate.matches(scope)
            if match is Match.FULL:
                return str(getattr(candidate, "path", "unmatched"))
        return "unmatched"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def tracking_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        self.metrics.in_flight.add()
        try:
            await self.app(scope, receive, tracking_send)
        finally:
            self.metrics.in_flight.add(amount=-1.0)
            route = self._route(scope)
            method = str(scope.get("method", ""))
            self.metrics.requests.inc(method, route, str(status))
            self.metrics.latency.observe(time.perf_counter() - started, method, route)
