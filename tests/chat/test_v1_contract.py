"""/v1's contract with raw HTTP: OpenAI-shaped errors everywhere, the shared caps, the field
audit, the documented responses, and the docs pages served without the key or a CDN."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from retrieval.api import create_app
from retrieval.config import Settings
from retrieval.rag import MAX_CONVERSATION_CHARS, MAX_MESSAGE_CHARS, MAX_MESSAGES
from tests.chat.serving import serve_app

KEY = "v1-secret"
ASK = [{"role": "user", "content": "a cat sleeping on a sofa"}]


@pytest.fixture(scope="module")
def base(rag_settings: Settings) -> Iterator[str]:
    """The API with an API key on a loopback port."""
    with serve_app(create_app(rag_settings.model_copy(update={"api_key": KEY})), KEY) as url:
        yield url


@pytest.fixture
def http(base: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {KEY}"},
                      timeout=30.0, trust_env=False) as client:
        yield client


def openai_error(response: httpx.Response, status: int) -> dict[str, Any]:
    """The error of an OpenAI-shaped response with that status."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["message"].endswith(".")
    return dict(body["error"])


def declared_too_big(base: str, path: str) -> tuple[int, dict[str, Any]]:
    """Status and JSON body of a POST declaring a 1 GB body (refused before it is sent)."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {KEY}\r\n"
                     "Content-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n"
                     .encode())
        raw = b""
        while b"\r\n\r\n" not in raw or not raw.rstrip().endswith(b"}"):
            data = sock.recv(65536)
            if not data:
                break
            raw += data
    head, _, payload = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(payload)


def chat(http: httpx.Client, **body: Any) -> httpx.Response:
    return http.post("/v1/chat/completions", json={"model": "mmrag", "messages": ASK, **body})


def test_every_v1_error_is_openai_shaped(base: str, http: httpx.Client) -> None:
    with httpx.Client(base_url=base, trust_env=False) as anonymous:
        for path in ("/v1/models", "/v1/chat/completions", "/v1/nope"):
            error = openai_error(anonymous.post(path, json={}), 401)
            assert error["code"] == "invalid_api_key"
            assert error["type"] == "invalid_request_error"
        unkeyed = anonymous.get("/stats")  # the rest of the API keeps its own shape
        assert unkeyed.status_code == 401 and "param" not in unkeyed.json()["error"]
    missing = openai_error(http.post("/v1/embeddings", json={}), 404)
    assert "Invalid URL (POST /v1/embeddings)" in missing["message"]
    assert "POST /v1/completions" in missing["message"]
    wrong_method = openai_error(http.get("/v1/chat/completions"), 405)
    assert "use POST" in wrong_method["message"]
    model = openai_error(chat(http, model="gpt-4o"), 404)
    assert (model["code"], model["param"]) == ("model_not_found", "model")
    broken = openai_error(http.post("/v1/chat/completions", content=b'{"model": "mmrag",',
                                    headers={"Content-Type": "application/json"}), 400)
    assert broken["param"] is None and broken["code"] == "invalid_json"
    typed = openai_error(chat(http, temperature="hot"), 400)
    assert typed["param"] == "temperature"
    nested = openai_error(chat(http, messages=[{"role": "user", "content": 5}]), 400)
    assert nested["param"].startswith("messages[0].content")
    status, body = declared_too_big(base, "/v1/chat/completions")
    assert status == 413 and body["error"]["code"] == "payload_too_large"
    assert set(body["error"]) == {"message", "type", "param", "code"}


def test_v1_has_the_caps_of_chat(http: httpx.Client) -> None:
    many = [{"role": "user", "content": "a cat"}] * (MAX_MESSAGES + 1)
    error = openai_error(chat(http, messages=many), 400)
    assert (error["param"], error["code"]) == ("messages", "array_above_max_length")
    long = [{"role": "system", "content": "x" * (MAX_MESSAGE_CHARS + 1)}, *ASK]
    error = openai_error(chat(http, messages=long), 400)
    assert (error["param"], error["code"]) == ("messages[0].content", "string_above_max_length")
    turns = MAX_CONVERSATION_CHARS // MAX_MESSAGE_CHARS + 1
    total = [{"role": "user", "content": "y" * MAX_MESSAGE_CHARS}] * turns
    error = openai_error(chat(http, messages=total), 400)
    assert error["code"] == "context_length_exceeded"
    prompt = http.post("/v1/completions",
                       json={"model": "mmrag", "prompt": "z" * (MAX_MESSAGE_CHARS + 1)})
    assert openai_error(prompt, 400)["code"] == "string_above_max_length"
    same = http.post("/chat", json={"messages": total})  # /chat: the same cap, its own shape
    assert same.status_code == 422 and "in all" in same.json()["error"]["message"]
    assert chat(http, messages=[*ASK] * MAX_MESSAGES).status_code == 200


@pytest.mark.parametrize(("field", "value", "param"), [
    ("n", 2, "n"),
    ("logprobs", True, "logprobs"),
    ("modalities", ["text", "audio"], "modalities"),
    ("web_search_options", {}, "web_search_options"),
    ("response_format", {"type": "json_object"}, "response_format"),
    ("tools", [{"type": "function", "function": {"name": "f"}}], "tools"),
    ("best_guess", 1, "best_guess"),
])
def test_fields_that_cannot_be_kept_are_refused_by_name(
    http: httpx.Client, field: str, value: Any, param: str
) -> None:
    assert openai_error(chat(http, **{field: value}), 400)["param"] == param


def test_fields_the_extractive_answer_keeps(http: httpx.Client) -> None:
    plain = chat(http).json()["choices"][0]["message"]["content"]
    stopped = chat(http, stop=["Retrieved items"], response_format={"type": "text"},
                   seed=3, top_p=0.5, user="u1").json()
    assert stopped["choices"][0]["message"]["content"] == plain.split("Retrieved items")[0]
    short = chat(http, max_tokens=3).json()["choices"][0]
    assert short["finish_reason"] == "length" and len(short["message"]["content"]) == 12
    bad = http.post("/v1/completions", json={"model": "mmrag", "prompt": [1, 2, 3]})
    assert openai_error(bad, 400)["param"] == "prompt"
    assert openai_error(http.post("/v1/completions", json={
        "model": "mmrag", "prompt": "a cat", "suffix": "!"}), 400)["param"] == "suffix"


def test_openapi_documents_streams_and_openai_errors(http: httpx.Client) -> None:
    schema = http.get("/openapi.json").json()
    for path in ("/v1/chat/completions", "/v1/completions"):
        responses = schema["paths"][path]["post"]["responses"]
        assert "text/event-stream" in responses["200"]["content"]
        assert "[DONE]" in responses["200"]["description"]
        assert "422" not in responses
        for status in ("400", "401", "404", "503"):
            ref = responses[status]["content"]["application/json"]["schema"]["$ref"]
            assert ref.endswith("/OpenAIErrorBody")
    detail = schema["components"]["schemas"]["OpenAIErrorDetail"]["properties"]
    assert set(detail) == {"message", "type", "param", "code"}


def test_docs_pages_load_without_the_key_and_without_a_cdn(base: str) -> None:
    with httpx.Client(base_url=base, trust_env=False) as anonymous:
        for page, asset in (("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")):
            html = anonymous.get(page)
            assert html.status_code == 200, html.text
            assert f"/docs-assets/{asset}" in html.text
            assert "cdn." not in html.text and "fonts.googleapis" not in html.text
            assert "img-src 'self' data:;" in html.headers["content-security-policy"]
            script = anonymous.get(f"/docs-assets/{asset}")
            assert script.status_code == 200 and len(script.content) > 500_000
        assert anonymous.get("/openapi.json").status_code == 200
        assert anonymous.post("/docs").status_code == 401  # only GET/HEAD are public
