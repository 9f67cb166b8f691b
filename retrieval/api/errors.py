"""One JSON error shape for every 4xx/5xx: ``{"error": {"type", "message", "details"?}}``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from retrieval.api.openai.errors import (
    is_openai_path,
    method_not_allowed,
    openai_error_body,
    route_not_found,
)
from retrieval.errors import (
    CollectionNotFoundError,
    ConfigError,
    EmbeddingError,
    FilterError,
    ImageDecodeError,
    MmragError,
    ModelMismatchError,
    ModelNotFoundError,
    StoreError,
    StoreUnavailableError,
)

log = logging.getLogger(__name__)

_STATUS_TYPES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    410: "gone",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "too_many_requests",
    500: "internal_error",
    502: "bad_gateway",
    503: "service_unavailable",
    504: "gateway_timeout",
}


class ApiError(Exception):
    """An error the API answers with a given status, type and message."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str | None = None,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type or _STATUS_TYPES.get(status, "error")
        self.details = details
        self.headers = headers


def error_body(type_: str, message: str, details: Any = None) -> dict[str, Any]:
    """The JSON body of an error response."""
    error: dict[str, Any] = {"type": type_, "message": message}
    if details is not None:
        error["details"] = details
    return {"error": error}


def error_response(
    status: int, message: str, *, type: str | None = None, details: Any = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """A JSONResponse in the API's error shape."""
    kind = type or _STATUS_TYPES.get(status, "error")
    return JSONResponse(error_body(kind, message, details), status_code=status, headers=headers)


def classify(exc: MmragError) -> ApiError:
    """The HTTP answer for one of mmrag's own errors."""
    if isinstance(exc, StoreUnavailableError):
        return ApiError(503, f"vector store unavailable: {exc}", type="store_unavailable")
    if isinstance(exc, CollectionNotFoundError):
        return ApiError(404, str(exc), type="collection_not_found")
    if isinstance(exc, ModelMismatchError):
        return ApiError(409, str(exc), type="model_mismatch")
    if isinstance(exc, StoreError):
        return ApiError(503, f"vector store error: {exc}", type="store_error")
    if isinstance(exc, ImageDecodeError):
        return ApiError(422, str(exc), type="invalid_image")
    if isinstance(exc, FilterError):
        details = {"field": exc.field} if exc.field is not None else None
        return ApiError(422, str(exc), type=exc.kind, details=details)
    if isinstance(exc, ModelNotFoundError | EmbeddingError):
        return ApiError(503, f"model unavailable: {exc}", type="model_unavailable")
    if isinstance(exc, ConfigError):
        return ApiError(422, str(exc), type="invalid_request")
    return ApiError(500, str(exc), type="internal_error")


def _validation_message(errors: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """A one-line summary and a JSON-safe list of pydantic validation errors."""
    details = []
    for err in errors:
        if err.get("type") == "json_invalid":
            reason = (err.get("ctx") or {}).get("error", "malformed")
            details.append({"field": "", "message": f"request body is not valid JSON ({reason})"})
            continue
        loc = [str(part) for part in err.get("loc", ())]
        if loc and loc[0] in ("body", "query", "path", "header", "cookie"):
            loc = loc[1:]  # where the value came from; the rest names the field
        details.append({"field": ".".join(loc), "message": str(err.get("msg", "invalid"))})
    parts = [f"{d['field']}: {d['message']}" if d["field"] else d["message"] for d in details]
    return "; ".join(parts) or "invalid request", details


def _route_path(request: Request) -> str:
    """The request path without the app's root_path."""
    path, root = request.url.path, str(request.scope.get("root_path", ""))
    return (path[len(root):] or "/") if root and path.startswith(root) else path


def _allowed(headers: dict[str, str] | None) -> str:
    """The methods a 405's Allow header lists."""
    return next((v for k, v in (headers or {}).items() if k.lower() == "allow"), "")


def _openai_error(
    request: Request, status: int, message: str, code: str | None,
    headers: dict[str, str] | None = None,
) -> JSONResponse | None:
    """Under /v1, the error in OpenAI's shape (None elsewhere)."""
    if not is_openai_path(_route_path(request)):
        return None
    body = openai_error_body(status, message, code)
    return JSONResponse(body, status_code=status, headers=headers)


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    """ApiError: its own status, type and message."""
    assert isinstance(exc, ApiError)
    openai = _openai_error(request, exc.status, exc.message, exc.type, exc.headers)
    if openai is not None:
        return openai
    return error_response(
        exc.status, exc.message, type=exc.type, details=exc.details, headers=exc.headers
    )


async def _mmrag_error(request: Request, exc: Exception) -> JSONResponse:
    """mmrag's own errors, mapped by classify()."""
    assert isinstance(exc, MmragError)
    api = classify(exc)
    if api.status >= 500:
        log.warning("%s %s: %s", request.method, request.url.path, api.message)
    return error_response(api.status, api.message, type=api.type, details=api.details)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    """Starlette/FastAPI HTTPExceptions (404 routes, 405, 413 bodies, multipart errors)."""
    assert isinstance(exc, StarletteHTTPException)
    message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    headers = dict(exc.headers) if exc.headers else None
    if exc.status_code == 405:
        headers = _allow_every_route(request, headers or {})
    if is_openai_path(_route_path(request)) and message in ("Not Found", "Method Not Allowed"):
        method, path = request.method, request.url.path
        message = (route_not_found(method, path) if exc.status_code == 404
                   else method_not_allowed(method, path, _allowed(headers)))
    openai = _openai_error(request, exc.status_code, message, None, headers)
    if openai is not None:
        return openai
    if exc.status_code == 404 and message == "Not Found":
        message = f"no route {request.url.path}"
    return error_response(exc.status_code, message, headers=headers)


_HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"})


def _allow_every_route(request: Request, headers: dict[str, str]) -> dict[str, str]:
    """A 405's Allow header listing the documented methods of the path (Starlette names only
    the first route's, e.g. POST for /ingest, which answers GET too)."""
    path = _route_path(request)
    paths: dict[str, dict[str, Any]] = request.app.openapi().get("paths", {})
    template = path if path in paths else next(
        (t for t in paths if compile_path(t)[0].match(path)), None
    )  # a literal path (/items/delete) before a template that also matches (/items/{id})
    if template is None:
        return headers
    methods = sorted(m.upper() for m in paths[template] if m.upper() in _HTTP_METHODS)
    headers = {k: v for k, v in headers.items() if k.lower() != "allow"}
    headers["Allow"] = ", ".join(methods)
    return headers


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    """Request validation failures as one 422 listing every field."""
    assert isinstance(exc, RequestValidationError)
    message, details = _validation_message(list(exc.errors()))
    return error_response(422, message, type="invalid_request", details=details)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    """Anything else: logged with its traceback, answered 500 without internals."""
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    openai = _openai_error(request, 500, f"internal error ({type(exc).__name__})", None)
    if openai is not None:
        return openai
    return error_response(500, f"internal error ({type(exc).__name__})", type="internal_error")


def install_error_handlers(app: FastAPI) -> None:
    """Route every error the API can raise through the one JSON shape."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(MmragError, _mmrag_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)
