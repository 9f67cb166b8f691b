"""Chat over images and text passages (#18.1): a passage's text is the context, its citation
names the document and passage, and a vision model gets images only for images.

A real Milvus Lite collection ingested from a folder (two demo images, two documents) with the
shipped mmrag-demo model; the OpenAI-compatible backend talks to the loopback fake server.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from ingest import IngestOptions, run_ingest
from ingest.sources import open_source
from retrieval.answerers import ChatMessage, ExtractiveAnswerer, OpenAICompatibleAnswerer
from retrieval.answerers.images import read_local_image
from retrieval.api import create_app
from retrieval.components import Components, build_components
from retrieval.config import Settings
from retrieval.demo.synthetic import render_scene
from retrieval.rag import ChatQuery, ChatService
from retrieval.search import Searcher
from tests.api.helpers import wait_ready
from tests.chat.fake_openai_server import FakeOpenAI

ITEM = re.compile(r'<retrieved_item n="(\d+)">([^<]*)</retrieved_item>')
QUESTION = "Where is the red circle?"
NOTE = "The red circle on a white background hangs in the hall."


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A collection of two images and two one-passage documents (plus a longer one)."""
    root = tmp_path_factory.mktemp("chat-text")
    folder = root / "library"
    folder.mkdir()
    rng = np.random.default_rng(3)
    for colour, shape in (("red", "circle"), ("blue", "square")):
        rgb = render_scene(colour, shape, rng)
        assert cv2.imwrite(str(folder / f"{colour}-{shape}.png"), rgb[..., ::-1])
    (folder / "hall.md").write_text(f"# Hall\n\n{NOTE}\n", encoding="utf-8")
    (folder / "kitchen.txt").write_text("A blue square sits on the kitchen shelf.\n",
                                        encoding="utf-8")
    settings = Settings(uri=str(root / "chat.db"), collection="chat", model="mmrag-demo",
                        pretrained=None, device="cpu", thumbnail_dir=root / "thumbs")
    components = build_components(settings)
    try:
        summary = run_ingest(components, open_source(folder), IngestOptions(workers=1))
    finally:
        components.close()
    assert (summary.ingested, summary.rejected) == (4, 0), summary.rejects
    return settings


@pytest.fixture
def components(settings: Settings) -> Iterator[Components]:
    comps = build_components(settings)
    yield comps
    comps.close()


def test_extractive_answer_cites_a_passage_by_document(components: Components) -> None:
    chat = ChatService(Searcher(components.embedder, components.store), ExtractiveAnswerer())
    answer = chat.answer(ChatQuery(messages=(ChatMessage("user", QUESTION),), k=4))
    passages = [c for c in answer.citations if c.modality == "text"]
    images = [c for c in answer.citations if c.modality == "image"]
    assert passages and images  # passages and images alike
    hall = next(c for c in passages if c.source.endswith("hall.md"))
    assert hall.document == "hall.md, passage 1 of 1"
    assert hall.caption == f"# Hall {NOTE}"
    assert f'[{hall.n}] "# Hall {NOTE}"' in answer.text
    assert "hall.md, passage 1 of 1" in answer.text
    assert all(c.document == "" for c in images)


def test_openai_backend_gets_passage_text_and_images_only_for_images(
    components: Components, fake_llm: FakeOpenAI
) -> None:
    llm = OpenAICompatibleAnswerer(
        base_url=fake_llm.base_url, model="fake-vision-model", api_key="sk-test", vision="on",
        timeout_s=5.0, max_retries=0, load_image=read_local_image, max_images=4,
    )
    fake_llm.reply = lambda body: "It hangs in the hall [1]."
    chat = ChatService(Searcher(components.embedder, components.store), llm)
    answer = chat.answer(ChatQuery(messages=(ChatMessage("user", QUESTION),), k=4))
    parts = fake_llm.last_body()["messages"][-1]["content"]
    text = "\n".join(p["text"] for p in parts if p["type"] == "text")
    items = {int(n): json.loads(body) for n, body in ITEM.findall(text)}
    kinds = {n: item.get("kind", "image") for n, item in items.items()}
    passage = next(item for item in items.values() if item.get("kind") == "text passage")
    assert passage["document"].endswith(", passage 1 of 1")
    assert "text" in passage and "caption" not in passage
    assert not {"doc_id", "char_start", "document"} & set(passage["metadata"])
    labelled = [int(m) for m in re.findall(r"Image of retrieved item \[(\d+)\]", text)]
    assert labelled and all(kinds[n] == "image" for n in labelled)
    assert len(labelled) == sum(kind == "image" for kind in kinds.values())
    assert answer.citations[0].n == 1


def test_chat_api_citations_carry_modality_and_document(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        reply = client.post("/chat", json={"messages": [{"role": "user", "content": QUESTION}],
                                           "k": 4})
    assert reply.status_code == 200, reply.text
    citations: list[dict[str, Any]] = reply.json()["citations"]
    by_kind = {c["modality"] for c in citations}
    assert by_kind == {"image", "text"}
    hall = next(c for c in citations if c["source"].endswith("hall.md"))
    assert hall["document"] == "hall.md, passage 1 of 1"
    assert Path(next(c for c in citations if c["modality"] == "image")["source"]).suffix == ".png"
