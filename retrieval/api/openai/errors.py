"""OpenAI's error shape, ``{"error": {"message", "type", "param", "code"}}``, for all of ``/v1``."""

from __future__ import annotations

from enum import Enum
from typing import Any

OPENAI_PREFIX = "/v1"
OPENAI_TAGS: list[str | Enum] = ["openai-compatible"]
V1_ROUTES = (
    "GET /v1/models, GET /v1/models/{model}, POST /v1/chat/completions and POST /v1/completions"
)


def is_openai_path(path: str) -> bool:
    """Whether a route path (without the app's root_path) is under ``/v1``."""
    return path == OPENAI_PREFIX or path.startswith(OPENAI_PREFIX + "/")


class OpenAIError(Exception):
    """An error answered in OpenAI's shape."""

    def __init__(
        self, status: int, message: str, *, code: str | None = None, param: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param


def openai_type(status: int) -> str:
    """OpenAI's error type for a status code (a bad key is an invalid request, as at OpenAI)."""
    if status == 403:
        return "permission_error"
    if status == 429:
        return "rate_limit_error"
    return "invalid_request_error" if status < 500 else "server_error"


def openai_error_body(
    status: int, message: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    """``{"error": {"message", "type", "param", "code"}}``."""
    return {"error": {"message": message, "type": openai_type(status), "param": param,
                      "code": code}}


def route_not_found(method: str, path: str) -> str:
    """OpenAI's message for an unknown URL, with the routes this server has."""
    return f"Invalid URL ({method} {path}). This server serves {V1_ROUTES}."


def method_not_allowed(method: str, path: str, allowed: str) -> str:
    """The message for a known URL asked with another method."""
    return f"Method {method} is not allowed for {path}; use {allowed or 'another method'}."


def invalid_json() -> str:
    """The message for a body that is not JSON (no byte offset: it is no parameter)."""
    return (
        "We could not parse the JSON body of your request. Send a JSON object with "
        "'Content-Type: application/json'."
    )
