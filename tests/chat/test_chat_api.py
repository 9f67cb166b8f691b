"""POST /chat and the OpenAI-compatible /v1 endpoints, served by uvicorn on loopback.

The /v1 tests use the official ``openai`` SDK as the client, streaming and not.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from fastapi import FastAPI

from retrieval.answerers import OpenAICompatibleAnswerer
from retrieval.api import create_app
from retrieval.api.routers.chat import load_item_image
from retrieval.config import Settings
from tests.chat.chat_data import CAPTIONS, INJECTION, LABELS
from tests.chat.fake_openai_server import FakeOpenAI
from tests.chat.serving import serve_app

KEY = "mmrag-secret"
QUESTION = "a cat sleeping on a sofa"
FAKE_REPLY = "A red square [1] and a circle [2, 3]."


class Served:
    """A running app and its base URL."""

    def __init__(self, app: FastAPI, url: str) -> None:
        self.app = app
        self.url = url

    def http(self, key: str | None = KEY) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30.0)

    def sdk(self, key: str = KEY) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=key, max_retries=0, timeout=30.0)


@pytest.fixture(scope="module")
def served(rag_settings: Settings) -> Iterator[Served]:
    """The API over the RAG collection, with an API key, on a loopback port."""
    app = create_app(rag_settings.model_copy(update={"api_key": KEY}))
    with serve_app(app, key=KEY) as url:
        yield Served(app, url)


@pytest.fixture
def llm_answerer(served: Served) -> Iterator[Any]:
    """Swap the app's answerer for the test (restored to the extractive default after)."""

    def use(base_url: str, **kwargs: Any) -> OpenAICompatibleAnswerer:
        options: dict[str, Any] = {
            "base_url": base_url, "model": "fake-vision-model", "api_key": "sk-test",
            "vision": "on", "timeout_s": 5.0, "max_retries": 0, "load_image": load_item_image,
        }
        options.update(kwargs)
        answerer = OpenAICompatibleAnswerer(**options)
        served.app.state.answerer = answerer
        return answerer

    yield use
    served.app.state.answerer = None


def sse_events(text: str) -> list[tuple[str, Any]]:
    """(event, data) pairs of a text/event-stream body."""
    out = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        out.append((fields["event"], json.loads(fields["data"])))
    return out


def user_messages(question: str = QUESTION) -> list[Any]:
    return [{"role": "user", "content": question}]


# ----- POST /chat ---------------------------------------------------------------------------


def test_chat_answers_with_citations_whose_images_are_served(served: Served) -> None:
    with served.http() as client:
        response = client.post("/chat", json={"messages": user_messages(), "k": 3})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["extractive"] is True and body["model"] == "mmrag-extractive"
        assert body["query"] == QUESTION
        assert body["answer"].startswith(f'The best match for "{QUESTION}" is [1]')
        assert [c["n"] for c in body["citations"]] == [1, 2, 3]
        first = body["citations"][0]
        assert first["caption"] in CAPTIONS and first["metadata"]["label"] in LABELS
        assert first["image_url"] == f"/items/{first['id']}/image"
        image = client.get(first["image_url"])
        assert image.status_code == 200 and image.headers["content-type"] == "image/png"
        assert client.get(first["thumbnail_url"]).headers["content-type"] == "image/jpeg"


def test_chat_needs_the_api_key(served: Served) -> None:
    with served.http(key=None) as client:
        response = client.post("/chat", json={"messages": user_messages()})
    assert response.status_code == 401


def test_chat_streams_tokens_then_citations_then_done(served: Served) -> None:
    with served.http() as client:
        response = client.post("/chat", json={"messages": user_messages(), "k": 2, "stream": True})
        plain = client.post("/chat", json={"messages": user_messages(), "k": 2}).json()
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    names = [name for name, _ in events]
    assert names[-2:] == ["citations", "done"] and set(names[:-2]) == {"token"}
    tokens = "".join(data["delta"] for name, data in events if name == "token")
    final = events[-2][1]
    assert tokens == final["answer"] == plain["answer"]
    assert final["citations"] == plain["citations"]


def test_chat_filters_and_validates(served: Served) -> None:
    with served.http() as client:
        dogs = client.post("/chat", json={
            "messages": user_messages("an animal"), "k": 8, "filter": {"label": "dog"},
        })
        unknown = client.post("/chat", json={
            "messages": user_messages(), "filter": {"nosuchkey": 1},
        })
        empty = client.post("/chat", json={"messages": [{"role": "assistant", "content": "hi"}]})
        bad_role = client.post("/chat", json={"messages": [{"role": "tool", "content": "x"}]})
    assert dogs.status_code == 200
    assert len(dogs.json()["citations"]) == LABELS.count("dog")
    assert {c["metadata"]["label"] for c in dogs.json()["citations"]} == {"dog"}
    assert unknown.status_code == 422 and unknown.json()["error"]["type"] == "unknown_filter_field"
    assert empty.status_code == 422 and "no user message" in empty.json()["error"]["message"]
    assert bad_role.status_code == 422


def test_chat_with_an_llm_sends_images_and_fenced_captions(
    served: Served, fake_llm: FakeOpenAI, llm_answerer: Any
) -> None:
    llm_answerer(fake_llm.base_url, max_images=2)
    with served.http() as client:
        body = client.post("/chat", json={
            "messages": user_messages(), "k": 8, "temperature": 0.1,
        }).json()
    assert body["answer"] == FAKE_REPLY and body["extractive"] is False
    assert body["model"] == "fake-vision-model"
    assert [c["n"] for c in body["citations"]] == [1, 2, 3]
    sent = fake_llm.last_body()
    assert sent["temperature"] == 0.1
    parts = sent["messages"][-1]["content"]
    images = [p for p in parts if p["type"] == "image_url"]
    assert len(images) == 2 and images[0]["image_url"]["url"].startswith("data:image/jpeg")
    context = parts[0]["text"]
    assert len(re.findall(r'<retrieved_item n="\d+">', context)) == 8
    fence_start = context.index("<retrieved_context>")
    fence_end = context.index("</retrieved_context>")
    assert fence_start < context.index(INJECTION) < fence_end
    assert json.dumps(sent).count("HACKED") == 1


def test_chat_reports_a_down_llm_and_a_bad_llm_key(
    served: Served, fake_llm: FakeOpenAI, closed_url: str, llm_answerer: Any
) -> None:
    llm_answerer(closed_url)
    with served.http() as client:
        down = client.post("/chat", json={"messages": user_messages()})
        down_stream = client.post("/chat", json={"messages": user_messages(), "stream": True})
        llm_answerer(fake_llm.base_url, api_key="sk-wrong")
        bad_key = client.post("/chat", json={"messages": user_messages()})
        llm_answerer(fake_llm.base_url, model="nope")
        bad_model = client.post("/chat", json={"messages": user_messages(), "stream": True})
    assert down.status_code == 503 and down.json()["error"]["type"] == "llm_unavailable"
    assert f"cannot reach LLM endpoint {closed_url}" in down.json()["error"]["message"]
    assert down_stream.status_code == 503
    assert bad_key.status_code == 502
    assert bad_key.json()["error"]["type"] == "llm_authentication_failed"
    assert bad_model.status_code == 502 and "'nope'" in bad_model.json()["error"]["message"]


# ----- /v1 with the official openai SDK -----------------------------------------------------


def test_sdk_lists_models(served: Served) -> None:
    client = served.sdk()
    ids = [model.id for model in client.models.list()]
    assert ids[0] == "mmrag" and "mmrag:rag" in ids
    assert client.models.retrieve("mmrag").id == "mmrag"


def test_sdk_chat_completion_is_grounded_and_carries_citations(served: Served) -> None:
    completion = served.sdk().chat.completions.create(
        model="mmrag", messages=user_messages(), temperature=0.3, extra_body={"k": 3},
    )
    assert completion.object == "chat.completion" and completion.model == "mmrag"
    assert completion.id.startswith("chatcmpl-")
    choice = completion.choices[0]
    assert choice.finish_reason == "stop" and choice.message.role == "assistant"
    content = choice.message.content or ""
    assert content.startswith(f'The best match for "{QUESTION}" is [1]')
    citations = (completion.model_extra or {})["citations"]
    assert [c["n"] for c in citations] == [1, 2, 3]
    assert citations[0]["image_url"] == f"/items/{citations[0]['id']}/image"
    assert completion.usage is not None


def test_sdk_streaming_chat_completion(served: Served) -> None:
    stream = served.sdk().chat.completions.create(
        model="mmrag:rag", messages=user_messages(), stream=True,
        stream_options={"include_usage": True}, extra_body={"k": 2},
    )
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason == "stop"]
    assert len(finals) == 1
    citations = (finals[0].model_extra or {})["citations"]
    assert [c["n"] for c in citations] == [1, 2]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    plain = served.sdk().chat.completions.create(
        model="mmrag", messages=user_messages(), extra_body={"k": 2},
    )
    assert text == plain.choices[0].message.content


def test_sdk_with_an_llm_backend_streams_its_tokens(
    served: Served, fake_llm: FakeOpenAI, llm_answerer: Any
) -> None:
    llm_answerer(fake_llm.base_url, vision="off")
    stream = served.sdk().chat.completions.create(
        model="mmrag", messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": QUESTION}]},
        ], stream=True, max_tokens=50,
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == FAKE_REPLY
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 3
    final = next(c for c in chunks if c.choices and c.choices[0].finish_reason == "stop")
    assert [c["n"] for c in (final.model_extra or {})["citations"]] == [1, 2, 3]
    sent = fake_llm.last_body()
    assert sent["stream"] is True and sent["max_tokens"] == 50
    assert sent["messages"][1] == {"role": "system", "content": "Be brief."}
    assert f"Question: {QUESTION}" in sent["messages"][-1]["content"]


def test_sdk_errors_use_openai_shape(
    served: Served, closed_url: str, fake_llm: FakeOpenAI, llm_answerer: Any
) -> None:
    client = served.sdk()
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="gpt-4o", messages=user_messages())
    assert missing.value.code == "model_not_found" and missing.value.param == "model"
    assert missing.value.type == "invalid_request_error"
    with pytest.raises(openai.NotFoundError) as no_collection:
        client.chat.completions.create(model="mmrag:nosuch", messages=user_messages())
    assert no_collection.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as invalid:
        client.chat.completions.create(model="mmrag", messages=[])
    assert invalid.value.param == "messages" and invalid.value.code == "invalid_request"
    with pytest.raises(openai.AuthenticationError):
        served.sdk(key="wrong").chat.completions.create(model="mmrag", messages=user_messages())
    raw = served.http().post("/v1/chat/completions", json={"model": "nope", "messages": []})
    assert set(raw.json()["error"]) == {"message", "type", "param", "code"}

    llm_answerer(closed_url)
    with pytest.raises(openai.InternalServerError) as down:
        client.chat.completions.create(model="mmrag", messages=user_messages())
    assert down.value.status_code == 503 and down.value.code == "llm_unavailable"
    assert closed_url in down.value.message
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="mmrag", messages=user_messages(), stream=True)
    llm_answerer(fake_llm.base_url, api_key="sk-wrong")
    with pytest.raises(openai.APIStatusError) as bad_key:
        client.chat.completions.create(model="mmrag", messages=user_messages())
    assert bad_key.value.status_code == 502 and bad_key.value.code == "llm_authentication_failed"


def test_llm_failure_mid_stream_ends_with_an_error_event(
    served: Served, fake_llm: FakeOpenAI, llm_answerer: Any
) -> None:
    fake_llm.stream_error = "the model crashed"
    llm_answerer(fake_llm.base_url, vision="off")
    with served.http() as client:
        response = client.post("/chat", json={"messages": user_messages(), "stream": True})
    assert response.status_code == 200
    events = sse_events(response.text)
    assert [name for name, _ in events] == ["token", "token", "error"]
    error = events[-1][1]["error"]
    assert error["type"] == "llm_error" and "the model crashed" in error["message"]
    stream = served.sdk().chat.completions.create(
        model="mmrag", messages=user_messages(), stream=True
    )
    with pytest.raises(openai.APIError) as err:
        list(stream)
    assert "the model crashed" in err.value.message
