"""Server-Sent Event responses that end cleanly when the server stops mid-stream.

uvicorn's graceful shutdown (SIGTERM) lets running responses finish for
``timeout_graceful_shutdown`` seconds, then cancels their tasks. A plain ``StreamingResponse``
stops there mid-body: the client sees a truncated chunked body. ``EventStreamResponse`` then
sends its ``closing`` event (an SSE ``error`` in the route's own shape) and ends the body, so
the client reads a whole stream that says why it stopped.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from starlette.responses import StreamingResponse
from starlette.types import Message, Receive, Scope, Send

log = logging.getLogger(__name__)

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
SHUTDOWN_MESSAGE = (
    "The server is shutting down and stopped this answer before it was finished; "
    "send the request again."
)


def sse(event: str, data: Any) -> str:
    """One named Server-Sent Event."""
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


class EventStreamResponse(StreamingResponse):
    """A ``text/event-stream`` response that, when cancelled, sends ``closing`` and ends."""

    def __init__(self, events: AsyncIterator[str], closing: str) -> None:
        super().__init__(events, media_type="text/event-stream", headers=SSE_HEADERS)
        self.closing = closing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = finished = False

        async def tracking_send(message: Message) -> None:
            nonlocal started, finished
            if message["type"] == "http.response.start":
                started = True
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                finished = True
            await send(message)

        try:
            await super().__call__(scope, receive, tracking_send)
        except asyncio.CancelledError:
            if not started or finished:
                raise
            # The server cancelled the stream (its graceful-shutdown period ran out): say so and
            # end the body; the request ends here, as the cancellation asked.
            log.warning("an event stream was cancelled (server shutting down); closing it")
            await send({"type": "http.response.body", "body": self.closing.encode("utf-8"),
                        "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
