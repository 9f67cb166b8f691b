"""OpenAI-compatible ``/v1``: mmrag as a "model" whose answers are grounded in the collection.

``GET /v1/models`` lists ``mmrag`` (the default collection) and ``mmrag:<collection>`` for each
collection; ``POST /v1/chat/completions`` answers like OpenAI's endpoint (JSON or SSE chunks
ending with ``data: [DONE]``), so the official SDKs, LangChain's ``ChatOpenAI`` and Open WebUI
can use it with ``base_url=http://host:8000/v1``. Extensions: the request may carry ``k`` and
``filter`` (the search API's structured filter; ``extra_body`` in the SDK), and the response (or
the last chunk) carries ``citations``. Errors use OpenAI's ``{"error": {"message", "type",
"param", "code"}}`` shape. Text content parts are used; image parts in requests are ignored.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from retrieval.answerers import Answer, ChatMessage, FinalEvent, GenerationOptions
from retrieval.answerers.base import Role
from retrieval.api.deps import ServiceDep
from retrieval.api.errors import ApiError
from retrieval.api.filters import FILTER_DESCRIPTION
from retrieval.api.routers.chat import (
    MAX_CHAT_K,
    SSE_HEADERS,
    aclose,
    api_error,
    chat_query,
    chat_service,
    citations_out,
    primed,
)
from retrieval.api.service import Service
from retrieval.errors import CollectionNotFoundError, MmragError, StoreError
from retrieval.rag import DEFAULT_K

MODEL_ID = "mmrag"
OWNER = "mmrag"
_COLLECTION_MODEL = re.compile(r"mmrag:(?P<name>[A-Za-z_][A-Za-z0-9_]{0,254})\Z")
_ROLES: dict[str, Role] = {
    "system": "system", "developer": "system", "user": "user", "assistant": "assistant",
}
_IGNORED_ROLES = frozenset({"tool", "function"})
_CREATED = int(time.time())
MAX_MESSAGES = 1000  # long client conversations are fine: the prompt keeps the recent turns


# ----- errors in OpenAI's shape ---------------------------------------------------------------


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
    """OpenAI's error type for a status code."""
    if status == 401:
        return "authentication_error"
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


def openai_error_response(exc: Exception) -> JSONResponse:
    """Any error a /v1 route raises, as an OpenAI-shaped JSON response."""
    if isinstance(exc, OpenAIError):
        status, message, code, param = exc.status, exc.message, exc.code, exc.param
        headers = None
    elif isinstance(exc, ApiError):
        status, message, code, headers = exc.status, exc.message, exc.type, exc.headers
        details = exc.details if isinstance(exc.details, dict) else {}
        param = str(details["field"]) if details.get("field") else None
    elif isinstance(exc, RequestValidationError):
        status, code, headers = 400, "invalid_request", None
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
        param = ".".join(loc) or None
        message = f"{param}: {first.get('msg', 'invalid')}" if param else "invalid request body"
    elif isinstance(exc, StarletteHTTPException):
        status, message, code, param = exc.status_code, str(exc.detail), None, None
        headers = dict(exc.headers) if exc.headers else None
    else:
        assert isinstance(exc, MmragError)
        api = api_error(exc)
        status, message, code, param, headers = api.status, api.message, api.type, None, None
    body = openai_error_body(status, message, code, param)
    return JSONResponse(body, status_code=status, headers=headers)


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


router = APIRouter(prefix="/v1", tags=["openai-compatible"], route_class=OpenAIRoute)


# ----- schemas ------------------------------------------------------------------------------


class ContentPart(BaseModel):
    """One content part (``text`` parts are used, others ignored)."""

    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None


class OpenAIMessage(BaseModel):
    """A message as OpenAI clients send it."""

    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        """The text of the message (text parts joined by newlines)."""
        if isinstance(self.content, str):
            return self.content
        if not self.content:
            return ""
        return "\n".join(p.text for p in self.content if p.type == "text" and p.text)


class StreamOptions(BaseModel):
    """OpenAI's ``stream_options``."""

    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """An OpenAI chat-completions request (unknown fields are accepted and ignored)."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(description="mmrag, or mmrag:<collection>")
    messages: list[OpenAIMessage] = Field(min_length=1, max_length=MAX_MESSAGES)
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    n: int | None = Field(1, ge=1)
    k: int = Field(DEFAULT_K, ge=1, le=MAX_CHAT_K, description="mmrag: items to retrieve")
    filter: dict[str, Any] | None = Field(None, description=f"mmrag: {FILTER_DESCRIPTION}")


class ModelCard(BaseModel):
    """One entry of ``/v1/models``."""

    id: str
    object: str = "model"
    created: int = _CREATED
    owned_by: str = OWNER


class ModelList(BaseModel):
    """The ``/v1/models`` list."""

    object: str = "list"
    data: list[ModelCard]


# ----- helpers ------------------------------------------------------------------------------


def model_collection(model: str, service: Service) -> str | None:
    """The collection a model id names (None: the default); 404 model_not_found otherwise."""
    if model == MODEL_ID:
        return None
    match = _COLLECTION_MODEL.match(model)
    if match is None:
        raise OpenAIError(
            404,
            f"The model {model[:100]!r} does not exist. This server serves {MODEL_ID!r} and "
            f"'{MODEL_ID}:<collection>' (see GET /v1/models).",
            code="model_not_found", param="model",
        )
    name = match["name"]
    return None if name == service.settings.collection else name


def to_messages(body: ChatCompletionRequest) -> list[ChatMessage]:
    """mmrag messages from OpenAI ones (developer -> system; tool turns dropped)."""
    out = []
    for index, message in enumerate(body.messages):
        if message.role in _IGNORED_ROLES:
            continue
        role = _ROLES.get(message.role)
        if role is None:
            raise OpenAIError(
                400, f"messages[{index}].role {message.role[:40]!r} is not supported",
                code="invalid_value", param=f"messages.{index}.role",
            )
        out.append(ChatMessage(role=role, content=message.text()))
    return out


def completion_body(
    cid: str, model: str, answer: Answer, citations: list[dict[str, Any]]
) -> dict[str, Any]:
    """A ``chat.completion`` object with mmrag's ``citations``."""
    return {
        "id": cid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": answer.text},
            "logprobs": None,
            "finish_reason": "stop",
        }],
        "usage": usage_of(answer),
        "citations": citations,
    }


def usage_of(answer: Answer) -> dict[str, int]:
    """Token counts the LLM reported (zeros when unknown, e.g. extractive answers)."""
    if answer.usage:
        return dict(answer.usage)
    return {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}


def usage_chunk(cid: str, model: str, created: int, answer: Answer) -> str:
    """The ``stream_options.include_usage`` chunk (no choices, only usage)."""
    body = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [], "usage": usage_of(answer)}
    return f"data: {json.dumps(body)}\n\n"


def chunk(cid: str, model: str, created: int, delta: dict[str, Any], **extra: Any) -> str:
    """One ``chat.completion.chunk`` as an SSE ``data:`` line."""
    finish = extra.pop("finish_reason", None)
    body = {
        "id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        **extra,
    }
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"


# ----- routes -------------------------------------------------------------------------------


@router.get("/models", response_model=ModelList, summary="Models (one per collection)")
async def list_models(service: ServiceDep) -> ModelList:
    """``mmrag`` for the default collection, then ``mmrag:<name>`` for every collection."""
    names: list[str] = []
    try:
        names = await service.stores.list_collections()
    except StoreError:
        names = []
    ids = [MODEL_ID, *(f"{MODEL_ID}:{n}" for n in names if _COLLECTION_MODEL.match(f"mmrag:{n}"))]
    return ModelList(data=[ModelCard(id=i) for i in ids])


@router.get("/models/{model}", response_model=ModelCard, summary="One model")
async def get_model(model: str, service: ServiceDep) -> ModelCard:
    """A model card, or 404 model_not_found."""
    model_collection(model, service)
    return ModelCard(id=model)


@router.post("/chat/completions", summary="OpenAI-compatible grounded chat completion")
async def chat_completions(
    body: ChatCompletionRequest, request: Request, service: ServiceDep
) -> Response:
    """Answer the latest user message from the collection, citing items as [n]."""
    if body.n not in (None, 1):
        raise OpenAIError(400, "only n=1 is supported", code="invalid_value", param="n")
    collection = model_collection(body.model, service)
    options = GenerationOptions(
        temperature=body.temperature, max_tokens=body.max_completion_tokens or body.max_tokens
    )
    chat_svc = chat_service(request, service, collection)
    cid = f"chatcmpl-{uuid.uuid4().hex}"
    try:
        query = await chat_query(
            service, to_messages(body), k=body.k, filter=body.filter, collection=collection,
            options=options,
        )
        if not body.stream:
            answer = await chat_svc.aanswer(query)
            cited = [c.model_dump() for c in citations_out(request, service, answer, collection)]
            return JSONResponse(completion_body(cid, body.model, answer, cited))
        events = await primed(chat_svc.astream(query))  # early errors become statuses
    except CollectionNotFoundError as exc:
        raise OpenAIError(404, f"The model {body.model!r} does not exist: {exc}",
                          code="model_not_found", param="model") from exc

    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    created = int(time.time())

    async def stream() -> AsyncIterator[str]:
        try:
            yield chunk(cid, body.model, created, {"role": "assistant", "content": ""})
            async for event in events:
                if isinstance(event, FinalEvent):
                    cited = citations_out(request, service, event.answer, collection)
                    yield chunk(cid, body.model, created, {}, finish_reason="stop",
                                citations=[c.model_dump() for c in cited])
                    if include_usage:
                        yield usage_chunk(cid, body.model, created, event.answer)
                elif event.delta:
                    yield chunk(cid, body.model, created, {"content": event.delta})
        except MmragError as exc:
            failure = api_error(exc)
            payload = openai_error_body(failure.status, failure.message, failure.type)
            yield f"data: {json.dumps(payload)}\n\n"
            return
        finally:  # a client that hangs up must not leave the LLM stream open
            await aclose(events)
        yield "data: [DONE]\n\n"

    return StreamingResponse(stream(), media_type="text/event-stream", headers=SSE_HEADERS)
