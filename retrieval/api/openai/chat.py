"""``POST /v1/chat/completions``: OpenAI's chat completions, answered from the collection."""

from __future__ import annotations

import time
import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.responses import Response

from retrieval.answerers import Answer, ChatMessage, GenerationOptions
from retrieval.answerers.base import Role
from retrieval.api.deps import ServiceDep
from retrieval.api.openai.errors import OPENAI_PREFIX, OPENAI_TAGS, OpenAIError
from retrieval.api.openai.grounded import Grounded, check_caps, grounded
from retrieval.api.openai.requests import chat_llm_fields
from retrieval.api.openai.route import OpenAIRoute
from retrieval.api.openai.schemas import (
    ChatCompletion,
    ChatCompletionRequest,
    openai_responses,
    sse_response,
)
from retrieval.api.openai.streaming import data, event_stream, usage_of

router = APIRouter(prefix=OPENAI_PREFIX, tags=OPENAI_TAGS, route_class=OpenAIRoute)
_ROLES: dict[str, Role] = {
    "system": "system", "developer": "system", "user": "user", "assistant": "assistant",
}
_IGNORED_ROLES = frozenset({"tool", "function"})
_CHUNK = '"object": "chat.completion.chunk", "choices": [{"delta": {"content": ...}}]'


def to_messages(body: ChatCompletionRequest) -> list[ChatMessage]:
    """mmrag messages from OpenAI ones (developer -> system; tool turns dropped)."""
    out = []
    for index, message in enumerate(body.messages):
        if message.role in _IGNORED_ROLES:
            continue
        role = _ROLES.get(message.role)
        if role is None:
            raise OpenAIError(
                400, f"messages[{index}].role {message.role[:40]!r} is not supported; use "
                "system, developer, user or assistant.",
                code="invalid_value", param=f"messages[{index}].role",
            )
        out.append(ChatMessage(role=role, content=message.text()))
    return out


def completion_body(cid: str, run: Grounded, answer: Answer) -> dict[str, Any]:
    """A ``chat.completion`` object with mmrag's ``citations``."""
    message: dict[str, Any] = {"role": "assistant", "content": answer.text}
    if answer.tool_calls:
        message["tool_calls"] = [dict(call) for call in answer.tool_calls]
        message["content"] = answer.text or None
    return {
        "id": cid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": run.model,
        "choices": [{
            "index": 0, "message": message, "logprobs": None,
            "finish_reason": answer.finish_reason,
        }],
        "usage": usage_of(answer),
        "citations": run.citations(answer),
    }


def chunk(cid: str, model: str, created: int, delta: dict[str, Any], **extra: Any) -> str:
    """One ``chat.completion.chunk`` as an SSE ``data:`` line."""
    finish = extra.pop("finish_reason", None)
    return data({
        "id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        **extra,
    })


@router.post(
    "/chat/completions",
    summary="OpenAI-compatible grounded chat completion",
    response_model=ChatCompletion,
    responses={200: sse_response(ChatCompletion, _CHUNK),
               **openai_responses(400, 401, 404, 413, 502, 503)},
)
async def chat_completions(
    body: ChatCompletionRequest, request: Request, service: ServiceDep
) -> Response:
    """Answer the latest user message from the collection, citing items as [n].

    Sampling and tool fields go to the LLM as given; fields that cannot be kept are refused
    with a 400 naming them (see docs/chat.md).
    """
    llm_fields = chat_llm_fields(body)
    check_caps([m.text() for m in body.messages])
    options = GenerationOptions(
        temperature=body.temperature, max_tokens=body.max_completion_tokens or body.max_tokens,
        stop=body.stops(), llm_fields=llm_fields,
    )
    run = await grounded(request, service, model=body.model, messages=to_messages(body),
                         k=body.k, filter=body.filter, options=options)
    cid = f"chatcmpl-{uuid.uuid4().hex}"
    if not body.stream:
        return JSONResponse(completion_body(cid, run, await run.answer()))
    events = await run.stream()
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    created = int(time.time())

    def final(answer: Answer) -> list[str]:
        lines = [chunk(cid, run.model, created, {}, finish_reason=answer.finish_reason,
                       citations=run.citations(answer))]
        if include_usage:
            lines.append(data({"id": cid, "object": "chat.completion.chunk", "created": created,
                               "model": run.model, "choices": [], "usage": usage_of(answer)}))
        return lines

    return event_stream(
        events,
        opening=[chunk(cid, run.model, created, {"role": "assistant", "content": ""})],
        delta=lambda text: chunk(cid, run.model, created, {"content": text}),
        final=final,
    )
