"""Client-test fixtures: the API over a small RAG collection on loopback, a fake upstream LLM.

The clients are the real ones (``openai``, LangChain's ``ChatOpenAI``, LlamaIndex's
``OpenAILike``) with their default settings; only the upstream LLM is a fake, a real HTTP
server speaking OpenAI's wire protocol (``tests/chat/fake_openai_server.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from retrieval.answerers import OpenAICompatibleAnswerer
from retrieval.api import create_app
from retrieval.api.routers.chat import load_item_image
from retrieval.config import Settings
from retrieval.embedders.base import Embedder
from tests.chat.conftest import build_rag_collection
from tests.chat.fake_openai_server import FakeOpenAI, FakeOpenAIServer
from tests.chat.serving import serve_app

KEY = "clients-secret"


@dataclass(frozen=True)
class Api:
    """The running API: its app (to swap the answerer) and its /v1 base URL."""

    app: FastAPI
    url: str

    @property
    def v1(self) -> str:
        return f"{self.url}/v1"


@pytest.fixture(scope="module")
def client_settings(
    tmp_path_factory: pytest.TempPathFactory,
    tiny_model_files: tuple[Path, Path],
    tiny_embedder: Embedder,
) -> Settings:
    """Eight captioned images in Milvus Lite, served with an API key."""
    settings = build_rag_collection(
        tmp_path_factory.mktemp("clients"), tiny_model_files, tiny_embedder
    )
    return settings.model_copy(update={"api_key": KEY})


@pytest.fixture(scope="module")
def api(client_settings: Settings) -> Iterator[Api]:
    """The API (extractive answerer) on a loopback port."""
    app = create_app(client_settings)
    with serve_app(app, KEY) as url:
        yield Api(app, url)


@pytest.fixture
def fake_llm() -> Iterator[FakeOpenAI]:
    """A fake OpenAI-compatible upstream LLM on loopback (key ``sk-test``)."""
    with FakeOpenAIServer() as fake:
        yield fake


@pytest.fixture
def llm_backend(api: Api, fake_llm: FakeOpenAI) -> Iterator[FakeOpenAI]:
    """The API answers with MMRAG_LLM=openai against the fake LLM for the test."""
    answerer = OpenAICompatibleAnswerer(
        base_url=fake_llm.base_url, model="fake-model", api_key="sk-test", vision="off",
        timeout_s=10.0, max_retries=0, load_image=load_item_image,
    )
    api.app.state.answerer = answerer
    yield fake_llm
    api.app.state.answerer = None
    answerer.close()


def last_user_text(body: dict[str, Any]) -> str:
    """The text of the last message the API sent the LLM."""
    content = body["messages"][-1]["content"]
    return content if isinstance(content, str) else " ".join(
        p.get("text", "") for p in content)
