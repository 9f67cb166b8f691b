"""The openai answerer against a real loopback server speaking the OpenAI wire protocol."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from typing import Any

import cv2
import numpy as np
import pytest

from retrieval.answerers import (
    ChatMessage,
    FinalEvent,
    GenerationOptions,
    OpenAICompatibleAnswerer,
    TokenEvent,
    create_answerer,
)
from retrieval.answerers.images import read_local_image
from retrieval.answerers.prompt import CONTEXT_TAG, SYSTEM_PROMPT
from retrieval.config import Settings
from retrieval.errors import LLMAuthenticationError, LLMModelNotFoundError, LLMUnavailableError
from retrieval.types import Hit
from tests.chat.chat_data import INJECTION
from tests.chat.fake_openai_server import FakeOpenAI

QUESTION = [ChatMessage("user", "Which pictures show a cat?")]
ITEM = re.compile(r'<retrieved_item n="(\d+)">([^<]*)</retrieved_item>')


def answerer(fake: FakeOpenAI, **kwargs: Any) -> OpenAICompatibleAnswerer:
    options: dict[str, Any] = {
        "base_url": fake.base_url, "model": "fake-model", "api_key": "sk-test",
        "vision": "off", "timeout_s": 5.0, "max_retries": 0, "load_image": read_local_image,
    }
    options.update(kwargs)
    return OpenAICompatibleAnswerer(**options)


def fenced_items(text: str) -> list[tuple[int, dict[str, Any]]]:
    return [(int(n), json.loads(body)) for n, body in ITEM.findall(text)]


def user_text(body: dict[str, Any]) -> str:
    content = body["messages"][-1]["content"]
    if isinstance(content, str):
        return content
    return "\n".join(p["text"] for p in content if p["type"] == "text")


def test_non_streaming_sends_numbered_fenced_captions_and_parses_citations(
    fake_llm: FakeOpenAI, image_hits: list[Hit]
) -> None:
    llm = answerer(fake_llm)
    answer = llm.answer(QUESTION, image_hits, GenerationOptions(temperature=0.2, max_tokens=99))
    sent = fake_llm.last_body()
    request = fake_llm.requests[-1]
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-test"
    assert sent["model"] == "fake-model" and not sent.get("stream")
    assert sent["temperature"] == 0.2 and sent["max_tokens"] == 99
    assert sent["messages"][0] == {"role": "system", "content": SYSTEM_PROMPT}
    last = sent["messages"][-1]
    assert last["role"] == "user" and isinstance(last["content"], str)  # vision off: text only
    assert "image_url" not in json.dumps(sent)
    items = fenced_items(last["content"])
    assert [n for n, _ in items] == [1, 2, 3, 4]
    assert [p["caption"] for _, p in items] == [h.caption for h in image_hits]
    assert [p["id"] for _, p in items] == [h.id for h in image_hits]
    assert items[0][1]["metadata"] == {"label": "cat", "year": 2020}
    assert items[0][1]["source"].endswith(".jpg") and "/" not in items[0][1]["source"]
    assert "Question: Which pictures show a cat?" in last["content"]

    assert answer.text == "A red square [1] and a circle [2, 3]."
    assert [(c.n, c.id) for c in answer.citations] == [(1, "item0"), (2, "item1"), (3, "item2")]
    assert answer.citations[0].image_url == "/items/item0/image"
    assert answer.citations[0].caption == image_hits[0].caption
    assert answer.model == "fake-model" and answer.extractive is False
    assert answer.usage == {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}


def test_uncited_answer_falls_back_to_every_context_item(
    fake_llm: FakeOpenAI, image_hits: list[Hit]
) -> None:
    fake_llm.reply = lambda body: "I cannot tell from these pictures."
    answer = answerer(fake_llm).answer(QUESTION, image_hits)
    assert [c.n for c in answer.citations] == [1, 2, 3, 4]


def test_vision_sends_top_images_as_bounded_jpeg_data_uris(
    fake_llm: FakeOpenAI, image_hits: list[Hit]
) -> None:
    llm = answerer(fake_llm, model="fake-vision-model", vision="on", max_images=2, image_px=512)
    llm.answer(QUESTION, image_hits)
    parts = fake_llm.last_body()["messages"][-1]["content"]
    assert isinstance(parts, list)
    images = [p["image_url"]["url"] for p in parts if p["type"] == "image_url"]
    assert len(images) == 2
    for url in images:
        assert url.startswith("data:image/jpeg;base64,")
        pixels = cv2.imdecode(np.frombuffer(base64.b64decode(url.split(",", 1)[1]), np.uint8), 1)
        assert pixels is not None
        assert max(pixels.shape[:2]) == 512  # 900x700 originals, resized
    labels = [p["text"] for p in parts if p["type"] == "text" and p["text"].startswith("Image")]
    assert labels[0].startswith("Image of retrieved item [1]")
    assert labels[1].startswith("Image of retrieved item [2]")
    assert "untrusted data" in labels[0]
    # Captions and metadata still go as text next to the pictures.
    assert [p["caption"] for _, p in fenced_items(parts[0]["text"])] == [
        h.caption for h in image_hits
    ]


def test_vision_auto_follows_the_model_name(fake_llm: FakeOpenAI, image_hits: list[Hit]) -> None:
    answerer(fake_llm, model="fake-model", vision="auto").answer(QUESTION, image_hits)
    assert isinstance(fake_llm.last_body()["messages"][-1]["content"], str)
    settings = Settings.model_validate({
        "llm": "openai", "llm_base_url": fake_llm.base_url, "llm_api_key": "sk-test",
        "llm_model": "gpt-4o-mini", "llm_max_retries": 0,
    })
    llm = create_answerer(settings)
    assert isinstance(llm, OpenAICompatibleAnswerer) and llm.vision


def test_streaming_yields_the_server_deltas_then_citations(
    fake_llm: FakeOpenAI, image_hits: list[Hit]
) -> None:
    events = list(answerer(fake_llm).stream(QUESTION, image_hits))
    assert fake_llm.last_body()["stream"] is True
    tokens = [e.delta for e in events if isinstance(e, TokenEvent)]
    assert len(tokens) > 3 and all(len(t) <= 5 for t in tokens)
    final = events[-1]
    assert isinstance(final, FinalEvent)
    assert sum(isinstance(e, FinalEvent) for e in events) == 1
    assert "".join(tokens) == final.answer.text == "A red square [1] and a circle [2, 3]."
    assert [c.n for c in final.answer.citations] == [1, 2, 3]


def test_async_answer_and_stream(fake_llm: FakeOpenAI, image_hits: list[Hit]) -> None:
    llm = answerer(fake_llm)

    async def run() -> tuple[str, str, list[int]]:
        answer = await llm.aanswer(QUESTION, image_hits)
        pieces, numbers = [], []
        async for event in llm.astream(QUESTION, image_hits):
            if isinstance(event, TokenEvent):
                pieces.append(event.delta)
            else:
                numbers = [c.n for c in event.answer.citations]
        await llm.aclose()
        return answer.text, "".join(pieces), numbers

    text, streamed, numbers = asyncio.run(run())
    assert text == streamed == "A red square [1] and a circle [2, 3]."
    assert numbers == [1, 2, 3]
    assert [b.get("stream", False) for b in fake_llm.chat_requests()] == [False, True]


def test_planted_instruction_reaches_the_model_only_as_quoted_data(
    fake_llm: FakeOpenAI, image_hits: list[Hit]
) -> None:
    answerer(fake_llm).answer(QUESTION, image_hits)
    sent = fake_llm.last_body()
    raw = json.dumps(sent)
    assert raw.count("HACKED") == 1
    system = sent["messages"][0]["content"]
    assert "HACKED" not in system and "UNTRUSTED DATA" in system
    text = user_text(sent)
    start, end = text.index(f"<{CONTEXT_TAG}>"), text.index(f"</{CONTEXT_TAG}>")
    assert start < text.index("HACKED") < end
    assert ("HACKED" not in text[:start]) and ("HACKED" not in text[end:])
    planted = dict(fenced_items(text))[3]
    assert planted["caption"] == image_hits[2].caption and INJECTION in planted["caption"]


def test_wrong_key_is_a_clear_authentication_error(
    fake_llm: FakeOpenAI, image_hits: list[Hit]
) -> None:
    with pytest.raises(LLMAuthenticationError) as err:
        answerer(fake_llm, api_key="sk-wrong").answer(QUESTION, image_hits)
    message = str(err.value)
    assert "refused the API key" in message and "401" in message
    assert "MMRAG_LLM_API_KEY" in message and fake_llm.base_url in message
    with pytest.raises(LLMAuthenticationError):
        list(answerer(fake_llm, api_key="sk-wrong").stream(QUESTION, image_hits))


def test_unknown_model_is_named_in_the_error(fake_llm: FakeOpenAI, image_hits: list[Hit]) -> None:
    with pytest.raises(LLMModelNotFoundError) as err:
        answerer(fake_llm, model="no-such-model").answer(QUESTION, image_hits)
    assert "'no-such-model'" in str(err.value) and "MMRAG_LLM_MODEL" in str(err.value)
    assert "does not exist" in str(err.value)  # the server's own message is kept


def test_endpoint_down_fails_fast_with_the_url(closed_url: str, image_hits: list[Hit]) -> None:
    llm = OpenAICompatibleAnswerer(base_url=closed_url, model="m", timeout_s=2.0, max_retries=0)
    started = time.monotonic()
    with pytest.raises(LLMUnavailableError) as err:
        llm.answer(QUESTION, image_hits)
    assert time.monotonic() - started < 5.0
    assert f"cannot reach LLM endpoint {closed_url}" in str(err.value)
    assert "refused" in str(err.value).lower()
    with pytest.raises(LLMUnavailableError):
        list(llm.stream(QUESTION, image_hits))


def test_server_errors_are_retried_with_backoff(
    fake_llm: FakeOpenAI, image_hits: list[Hit]
) -> None:
    fake_llm.fail_first = 1
    answer = answerer(fake_llm, max_retries=1).answer(QUESTION, image_hits)
    assert answer.text.startswith("A red square")
    assert len(fake_llm.chat_requests()) == 2


def test_slow_endpoint_times_out(fake_llm: FakeOpenAI, image_hits: list[Hit]) -> None:
    fake_llm.delay_s = 2.0
    with pytest.raises(LLMUnavailableError) as err:
        answerer(fake_llm, timeout_s=0.3).answer(QUESTION, image_hits)
    assert "timed out" in str(err.value)
