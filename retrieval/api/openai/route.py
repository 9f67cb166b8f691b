"""``OpenAIRoute``: a ``/v1`` route whose every error, validation included, is OpenAI-shaped."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from retrieval.answerers.base import UnsupportedParameterError
from retrieval.api.errors import ApiError
from retrieval.api.openai.errors import OpenAIError, invalid_json, openai_error_body
from retrieval.api.routers.chat import api_error
from retrieval.errors import MmragError


def validation_error(exc: RequestValidationError) -> OpenAIError:
    """A request validation failure as a 400 naming the first bad parameter (OpenAI's way)."""
    first = exc.errors()[0] if exc.errors() else {}
    if first.get("type") == "json_invalid":
        return OpenAIError(400, invalid_json(), code="invalid_json")
    loc = [p for p in first.get("loc", ()) if p not in ("body", "query", "path")]
    param = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".") or None
    reason = str(first.get("msg", "invalid value"))
    if param is None:
        return OpenAIError(400, f"The request body is invalid: {reason}.", code="invalid_request")
    return OpenAIError(400, f"Invalid '{param}': {reason}.", code="invalid_request", param=param)


def as_openai_error(exc: Exception) -> tuple[OpenAIError, dict[str, str] | None]:
    """Any error a /v1 route raises as an OpenAIError (and headers to send with it)."""
    if isinstance(exc, OpenAIError):
        return exc, None
    if isinstance(exc, UnsupportedParameterError):
        return OpenAIError(400, exc.args[0], code="unsupported_parameter", param=exc.param), None
    if isinstance(exc, RequestValidationError):
        return validation_error(exc), None
    if isinstance(exc, StarletteHTTPException):
        headers = dict(exc.headers) if exc.headers else None
        return OpenAIError(exc.status_code, str(exc.detail)), headers
    if isinstance(exc, MmragError):
        exc = api_error(exc)
    assert isinstance(exc, ApiError)
    details = exc.details if isinstance(exc.details, dict) else {}
    param = str(details["field"]) if details.get("field") else None
    return OpenAIError(exc.status, exc.message, code=exc.type, param=param), exc.headers


def openai_error_response(exc: Exception) -> JSONResponse:
    """Any error a /v1 route raises, as an OpenAI-shaped JSON response."""
    error, headers = as_openai_error(exc)
    body = openai_error_body(error.status, error.message, error.code, error.param)
    return JSONResponse(body, status_code=error.status, headers=headers)


class OpenAIRoute(APIRoute):
    """A route whose errors (validation included) use OpenAI's error shape."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """Wrap FastAPI's handler to convert errors."""
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except (
                OpenAIError, ApiError, RequestValidationError, StarletteHTTPException, MmragError
            ) as exc:
                return openai_error_response(exc)

        return route
