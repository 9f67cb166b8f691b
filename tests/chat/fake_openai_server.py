"""A real HTTP server on loopback that speaks OpenAI's chat-completions wire protocol.

It records every request (path, headers, JSON body), checks ``Authorization: Bearer <key>``
(401 ``invalid_api_key`` otherwise) and the model (404 ``model_not_found``), and answers with
``chat.completion`` JSON or ``chat.completion.chunk`` SSE events ending with ``data: [DONE]``
(a usage chunk first when ``stream_options.include_usage``). A request with ``tools`` and a
forced ``tool_choice`` is answered with a tool call whose arguments are the reply.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Reply = Callable[[dict[str, Any]], str]


@dataclass
class Recorded:
    """One request the server got."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None


@dataclass
class FakeOpenAI:
    """Behaviour and the log of a fake OpenAI-compatible server."""

    api_key: str | None = "sk-test"
    models: tuple[str, ...] = ("fake-model", "fake-vision-model")
    reply: Reply = field(default=lambda body: "A red square [1] and a circle [2, 3].")
    chunk_chars: int = 5
    delay_s: float = 0.0
    chunk_delay_s: float = 0.0  # pause before each streamed content chunk (a slow model)
    fail_first: int = 0  # answer this many requests with 503 before serving
    stream_error: str | None = None  # send this error event after two content chunks
    requests: list[Recorded] = field(default_factory=list)
    base_url: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def chat_requests(self) -> list[dict[str, Any]]:
        """JSON bodies of the chat-completions requests, in order."""
        return [r.body for r in self.requests if r.path.endswith("/chat/completions") and r.body]

    def last_body(self) -> dict[str, Any]:
        """The last chat-completions body."""
        bodies = self.chat_requests()
        assert bodies, "the fake server got no chat request"
        return bodies[-1]

    def record(self, item: Recorded) -> int:
        """Log a request; returns how many came before."""
        with self._lock:
            self.requests.append(item)
            return len(self.requests) - 1


def _error(message: str, type_: str, code: str | None, param: str | None = None) -> bytes:
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return json.dumps(body).encode()


def _forced_tool(body: dict[str, Any]) -> str | None:
    """The tool a request forces (``tool_choice`` naming one, or "required" with one tool)."""
    tools = body.get("tools") or []
    choice = body.get("tool_choice")
    if not tools or choice in (None, "none", "auto"):
        return None
    if isinstance(choice, dict):
        return str(choice["function"]["name"])
    return str(tools[0]["function"]["name"])


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _headers(self) -> dict[str, str]:
        return {key.lower(): value for key, value in self.headers.items()}

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        fake = self.server.fake
        fake.record(Recorded("GET", self.path, self._headers(), None))
        if not self._authorised():
            return
        if self.path.rstrip("/").endswith("/models"):
            data = [{"id": m, "object": "model", "created": 0, "owned_by": "fake"}
                    for m in fake.models]
            self._send(200, json.dumps({"object": "list", "data": data}).encode())
            return
        self._send(404, _error(f"no route {self.path}", "invalid_request_error", None))

    def do_POST(self) -> None:
        fake = self.server.fake
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        index = fake.record(Recorded("POST", self.path, self._headers(), body))
        if index < fake.fail_first:
            self._send(503, _error("overloaded, try again", "server_error", None))
            return
        if not self._authorised():
            return
        if not self.path.rstrip("/").endswith("/chat/completions") or not isinstance(body, dict):
            self._send(404, _error(f"no route {self.path}", "invalid_request_error", None))
            return
        model = body.get("model")
        if model not in fake.models:
            message = f"The model `{model}` does not exist or you do not have access to it."
            self._send(404, _error(message, "invalid_request_error", "model_not_found", "model"))
            return
        if fake.delay_s:
            time.sleep(fake.delay_s)
        text = fake.reply(body)
        if body.get("stream"):
            self._stream(model, text, include_usage=bool(
                (body.get("stream_options") or {}).get("include_usage")))
        else:
            self._complete(model, text, _forced_tool(body))

    def _authorised(self) -> bool:
        fake = self.server.fake
        if fake.api_key is None:
            return True
        if self.headers.get("Authorization") == f"Bearer {fake.api_key}":
            return True
        message = "Incorrect API key provided: sk-wr***. You can find your API key at ..."
        self._send(401, _error(message, "invalid_request_error", "invalid_api_key"))
        return False

    def _complete(self, model: str, text: str, tool: str | None = None) -> None:
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if tool is not None:
            message = {"role": "assistant", "content": None, "tool_calls": [{
                "id": "call_fake1", "type": "function",
                "function": {"name": tool, "arguments": text},
            }]}
        body = {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": 1700000000,
            "model": model,
            "choices": [{
                "index": 0,
                "message": message,
                "finish_reason": "stop" if tool is None else "tool_calls",
            }],
            "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
        }
        self._send(200, json.dumps(body).encode())

    def _stream(self, model: str, text: str, include_usage: bool = False) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        size = self.server.fake.chunk_chars

        def event(delta: dict[str, Any], finish: str | None = None) -> None:
            chunk = {
                "id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1700000000,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()

        event({"role": "assistant", "content": ""})
        for index, start in enumerate(range(0, len(text), size)):
            if index == 2 and self.server.fake.stream_error:
                error = {"error": {"message": self.server.fake.stream_error,
                                   "type": "server_error", "param": None, "code": None}}
                self.wfile.write(f"data: {json.dumps(error)}\n\n".encode())
                self.wfile.flush()
                return
            if self.server.fake.chunk_delay_s:
                time.sleep(self.server.fake.chunk_delay_s)
            try:
                event({"content": text[start : start + size]})
            except (BrokenPipeError, ConnectionResetError):
                return  # the client stopped reading (closed the stream)
        event({}, "stop")
        if include_usage:
            usage = {"prompt_tokens": 13, "completion_tokens": 9, "total_tokens": 22}
            chunk = {"id": "chatcmpl-fake", "object": "chat.completion.chunk",
                     "created": 1700000000, "model": model, "choices": [], "usage": usage}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: FakeOpenAI) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake


class FakeOpenAIServer:
    """Runs a FakeOpenAI on ``127.0.0.1:<free port>`` in a background thread."""

    def __init__(self, fake: FakeOpenAI | None = None) -> None:
        self.fake = fake or FakeOpenAI()
        self._server = _Server(self.fake)
        port = self._server.server_address[1]
        self.fake.base_url = f"http://127.0.0.1:{port}/v1"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        return self.fake

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
