"""``POST /v1/completions``: OpenAI's (legacy) text completions, the prompt answered from the
collection (LlamaIndex's ``OpenAILike`` calls it by default)."""

from __future__ import annotations

import time
import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.responses import Response

from retrieval.answerers import Answer, ChatMessage, GenerationOptions
from retrieval.api.deps import ServiceDep
from retrieval.api.openai.errors import OPENAI_PREFIX, OPENAI_TAGS
from retrieval.api.openai.grounded import Grounded, check_caps, grounded
from retrieval.api.openai.requests import completion_llm_fields, prompt_text
from retrieval.api.openai.route import OpenAIRoute
from retrieval.api.openai.schemas import (
    CompletionRequest,
    TextCompletion,
    openai_responses,
    sse_response,
)
from retrieval.api.openai.streaming import data, event_stream, usage_of

router = APIRouter(prefix=OPENAI_PREFIX, tags=OPENAI_TAGS, route_class=OpenAIRoute)
_CHUNK = '"object": "text_completion", "choices": [{"text": ...}]'


def text_body(cid: str, run: Grounded, answer: Answer, echo: str) -> dict[str, Any]:
    """A ``text_completion`` object with mmrag's ``citations``."""
    return {
        "id": cid,
        "object": "text_completion",
        "created": int(time.time()),
        "model": run.model,
        "choices": [{"text": echo + answer.text, "index": 0, "logprobs": None,
                     "finish_reason": answer.finish_reason}],
        "usage": usage_of(answer),
        "citations": run.citations(answer),
    }


def text_chunk(cid: str, model: str, created: int, text: str, **extra: Any) -> str:
    """One streamed ``text_completion`` as an SSE ``data:`` line."""
    finish = extra.pop("finish_reason", None)
    return data({
        "id": cid, "object": "text_completion", "created": created, "model": model,
        "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": finish}],
        **extra,
    })


@router.post(
    "/completions",
    summary="OpenAI-compatible grounded text completion (one prompt)",
    response_model=TextCompletion,
    responses={200: sse_response(TextCompletion, _CHUNK),
               **openai_responses(400, 401, 404, 413, 502, 503)},
)
async def completions(body: CompletionRequest, request: Request, service: ServiceDep) -> Response:
    """Answer the prompt from the collection, citing items as [n] (``echo`` repeats the prompt)."""
    llm_fields = completion_llm_fields(body)
    prompt = prompt_text(body)
    check_caps([prompt])
    options = GenerationOptions(temperature=body.temperature, max_tokens=body.max_tokens,
                                stop=body.stops(), llm_fields=llm_fields)
    run = await grounded(request, service, model=body.model,
                         messages=[ChatMessage(role="user", content=prompt)],
                         k=body.k, filter=body.filter, options=options)
    cid = f"cmpl-{uuid.uuid4().hex}"
    echo = prompt if body.echo else ""
    if not body.stream:
        return JSONResponse(text_body(cid, run, await run.answer(), echo))
    events = await run.stream()
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    created = int(time.time())

    def final(answer: Answer) -> list[str]:
        lines = [text_chunk(cid, run.model, created, "", finish_reason=answer.finish_reason,
                            citations=run.citations(answer))]
        if include_usage:
            lines.append(data({"id": cid, "object": "text_completion", "created": created,
                               "model": run.model, "choices": [], "usage": usage_of(answer)}))
        return lines

    return event_stream(
        events,
        opening=[text_chunk(cid, run.model, created, echo)] if echo else [],
        delta=lambda text: text_chunk(cid, run.model, created, text),
        final=final,
    )
