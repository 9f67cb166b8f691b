"""OpenAI-style event streams: ``data: {...}`` chunks, ``data: [DONE]``, errors as a data line."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from retrieval.answerers import Answer, AnswerEvent, FinalEvent
from retrieval.api.openai.errors import openai_error_body
from retrieval.api.routers.chat import aclose, api_error
from retrieval.api.sse import SHUTDOWN_MESSAGE, EventStreamResponse
from retrieval.errors import MmragError

DONE = "data: [DONE]\n\n"


def data(body: dict[str, Any]) -> str:
    """One ``data:`` event."""
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"


def usage_of(answer: Answer) -> dict[str, int]:
    """The answer's token counts (the LLM's, or the estimate the answerer made)."""
    usage = dict(answer.usage or {})
    return {key: int(usage.get(key, 0))
            for key in ("prompt_tokens", "completion_tokens", "total_tokens")}


def event_stream(
    events: AsyncIterator[AnswerEvent],
    *,
    opening: list[str],
    delta: Callable[[str], str],
    final: Callable[[Answer], list[str]],
) -> EventStreamResponse:
    """The response: ``opening``, a chunk per delta, ``final``'s chunks, then ``[DONE]``.

    A failure mid-stream is one error data line (the SDKs raise it) that ends the stream; so is
    the server stopping past its grace period.
    """

    async def stream() -> AsyncIterator[str]:
        try:
            for line in opening:
                yield line
            async for event in events:
                if isinstance(event, FinalEvent):
                    for line in final(event.answer):
                        yield line
                elif event.delta:
                    yield delta(event.delta)
        except MmragError as exc:
            failure = api_error(exc)
            yield data(openai_error_body(failure.status, failure.message, failure.type))
            return
        finally:  # a client that hangs up must not leave the LLM stream open
            await aclose(events)
        yield DONE

    closing = data(openai_error_body(503, SHUTDOWN_MESSAGE, "server_shutting_down"))
    return EventStreamResponse(stream(), closing)
