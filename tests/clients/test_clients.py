"""The real OpenAI-compatible clients, with their default settings, against mmrag's /v1.

``openai`` (chat and legacy completions, streaming and not), LangChain's ``ChatOpenAI``
(``invoke``, ``stream``, ``with_structured_output`` by JSON schema and by tool calling) and
LlamaIndex's ``OpenAILike`` (whose defaults call ``/v1/completions``).
"""

from __future__ import annotations

import json
import re

import httpx
import openai
import pytest
from langchain_openai import ChatOpenAI
from llama_index.llms.openai_like import OpenAILike
from pydantic import BaseModel

from tests.chat.chat_data import CAPTIONS
from tests.chat.fake_openai_server import FakeOpenAI
from tests.clients.conftest import KEY, Api, last_user_text

QUESTION = "a cat sleeping on a sofa"


class Picture(BaseModel):
    """What LangChain asks the model to fill in."""

    caption: str
    item: int


PICTURE = {"caption": CAPTIONS[0], "item": 1}


def requests_to(api: Api, route: str) -> float:
    """How many requests the API counted for a route (its /metrics)."""
    text = httpx.get(f"{api.url}/metrics", headers={"X-API-Key": KEY}).text
    pattern = rf'mmrag_http_requests_total{{[^}}]*route="{re.escape(route)}"[^}}]*}} (\S+)'
    return sum(float(n) for n in re.findall(pattern, text))


def sdk(api: Api) -> openai.OpenAI:
    return openai.OpenAI(base_url=api.v1, api_key=KEY)


def test_openai_sdk_legacy_completions_are_grounded_with_usage(api: Api) -> None:
    client = sdk(api)
    done = client.completions.create(model="mmrag", prompt=QUESTION)
    assert done.object == "text_completion"
    text = done.choices[0].text
    assert text.startswith(f'The best match for "{QUESTION}" is [1]')
    assert done.choices[0].finish_reason == "stop"
    assert done.usage is not None and done.usage.completion_tokens == -(-len(text) // 4)
    assert done.usage.total_tokens == done.usage.prompt_tokens + done.usage.completion_tokens
    assert [c["n"] for c in (done.model_extra or {})["citations"]][:1] == [1]

    chunks = list(client.completions.create(
        model="mmrag", prompt=QUESTION, stream=True, stream_options={"include_usage": True}))
    streamed = "".join(c.choices[0].text for c in chunks if c.choices)
    assert streamed == text
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    echoed = client.completions.create(model="mmrag", prompt=QUESTION, echo=True, max_tokens=5)
    assert echoed.choices[0].text == QUESTION + text[:20]
    assert echoed.choices[0].finish_reason == "length"


def test_openai_sdk_chat_usage_is_estimated_for_extractive_answers(api: Api) -> None:
    done = sdk(api).chat.completions.create(
        model="mmrag", messages=[{"role": "user", "content": QUESTION}])
    usage = done.usage
    assert usage is not None and usage.prompt_tokens > len(QUESTION) // 4
    assert usage.completion_tokens == -(-len(done.choices[0].message.content or "") // 4)


def test_langchain_chat_openai_invokes_and_streams(api: Api) -> None:
    llm = ChatOpenAI(base_url=api.v1, api_key=KEY, model="mmrag")
    answer = llm.invoke(QUESTION)
    assert str(answer.content).startswith(f'The best match for "{QUESTION}"')
    assert answer.usage_metadata is not None and answer.usage_metadata["output_tokens"] > 0
    streamed = "".join(str(part.content) for part in llm.stream(QUESTION))
    assert streamed == answer.content


def test_langchain_structured_output_passes_the_schema_to_the_llm(
    api: Api, llm_backend: FakeOpenAI
) -> None:
    llm_backend.reply = lambda body: json.dumps(PICTURE)
    llm = ChatOpenAI(base_url=api.v1, api_key=KEY, model="mmrag")
    picture = llm.with_structured_output(Picture).invoke(QUESTION)
    assert picture == Picture(**PICTURE)
    sent = llm_backend.last_body()
    assert sent["response_format"]["type"] == "json_schema"
    assert sent["response_format"]["json_schema"]["name"] == "Picture"
    assert f"Question: {QUESTION}" in last_user_text(sent)  # still grounded in the collection

    called = llm.with_structured_output(Picture, method="function_calling").invoke(QUESTION)
    assert called == Picture(**PICTURE)
    sent = llm_backend.last_body()
    assert [t["function"]["name"] for t in sent["tools"]] == ["Picture"]
    assert sent["tool_choice"]["function"]["name"] == "Picture"


def test_structured_output_with_the_extractive_answerer_is_a_400_naming_it(api: Api) -> None:
    llm = ChatOpenAI(base_url=api.v1, api_key=KEY, model="mmrag")
    with pytest.raises(openai.BadRequestError) as schema:
        llm.with_structured_output(Picture).invoke(QUESTION)
    assert schema.value.param == "response_format"
    assert "MMRAG_LLM=openai" in schema.value.message
    with pytest.raises(openai.BadRequestError) as tools:
        llm.with_structured_output(Picture, method="function_calling").invoke(QUESTION)
    assert tools.value.param == "tools"


def test_llamaindex_openai_like_defaults_use_completions(api: Api) -> None:
    before = requests_to(api, "/v1/completions"), requests_to(api, "/v1/chat/completions")
    llm = OpenAILike(model="mmrag", api_base=api.v1, api_key=KEY)
    done = llm.complete(QUESTION)
    assert done.text.startswith(f'The best match for "{QUESTION}" is [1]')
    streamed = "".join(part.delta or "" for part in llm.stream_complete(QUESTION))
    assert streamed == done.text
    after = requests_to(api, "/v1/completions"), requests_to(api, "/v1/chat/completions")
    assert (after[0] - before[0], after[1] - before[1]) == (2, 0)
