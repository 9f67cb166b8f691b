"""JSON from clients, depth-limited: nesting past ``MAX_JSON_DEPTH`` is a 422, never a
``RecursionError`` (a 500 that also dropped the keep-alive connection).

``loads_client_json`` parses JSON text a route reads itself (the upload form's ``filter``
field); ``DepthLimitedRoute`` checks a JSON request body before FastAPI parses it. The check
counts brackets outside strings (numpy over the bracket bytes only), so it costs little next
to the parse itself; bodies with few brackets skip it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Coroutine
from typing import Any

import numpy as np
from fastapi import Request, Response
from fastapi.routing import APIRoute

from retrieval.api.errors import ApiError

MAX_JSON_DEPTH = 64
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_JSON_MEDIA = re.compile(r"application/(?:[\w.+-]*\+)?json\Z")


def json_depth(data: bytes) -> int:
    """How deeply arrays and objects nest in JSON text (strings are skipped)."""
    if data.count(b"[") + data.count(b"{") == 0:
        return 0
    brackets = _STRING.sub(b"", data).translate(None, _NOT_BRACKETS)
    if not brackets:
        return 0
    codes = np.frombuffer(brackets, dtype=np.uint8)
    steps = np.where((codes == ord("[")) | (codes == ord("{")), 1, -1)
    return int(np.cumsum(steps).max(initial=0))


def too_deep(data: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether JSON text nests deeper than ``limit`` (cheap when it has few brackets)."""
    if data.count(b"[") + data.count(b"{") <= limit:
        return False
    return json_depth(data) > limit


def depth_error(what: str, limit: int = MAX_JSON_DEPTH) -> ApiError:
    """The 422 for JSON nested too deeply."""
    return ApiError(
        422,
        f"{what} nests arrays and objects more than {limit} levels deep; send flatter JSON",
        type="invalid_request",
    )


def loads_client_json(text: str | bytes, what: str, *, error_type: str) -> Any:
    """Parse JSON a client sent (depth-limited); a 422 of ``error_type`` when it is not JSON."""
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    if too_deep(data):
        raise depth_error(what)
    try:
        return json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
        raise ApiError(422, f"{what} is not JSON: {reason}", type=error_type) from exc
    except RecursionError as exc:  # a limit lower than MAX_JSON_DEPTH (a deep call stack)
        raise depth_error(what) from exc


def _may_be_json(request: Request) -> bool:
    """A JSON content type, or none (which FastAPI may still parse as JSON)."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return not media or bool(_JSON_MEDIA.match(media))


class DepthLimitedRoute(APIRoute):
    """A route whose JSON request body is refused (422) when nested past MAX_JSON_DEPTH."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """FastAPI's handler, after the depth check (the body is read once and cached)."""
        handler = super().get_route_handler()

        async def checked(request: Request) -> Response:
            body_may_be_json = request.method in ("POST", "PUT", "PATCH") and _may_be_json(request)
            if body_may_be_json and too_deep(await request.body()):
                raise depth_error("the request body")
            return await handler(request)

        return checked
