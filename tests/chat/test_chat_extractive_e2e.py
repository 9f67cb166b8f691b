"""The extractive answerer end to end over a real Milvus Lite collection, and `mmrag ask`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from mmrag.cli import main
from retrieval.answerers import ChatMessage, ExtractiveAnswerer, FinalEvent, TokenEvent
from retrieval.answerers.extractive import EXTRACTIVE_MODEL, NOTICE
from retrieval.components import Components, build_components
from retrieval.config import Settings
from retrieval.embedders.base import Embedder
from retrieval.rag import ChatQuery, ChatService
from retrieval.search import Searcher, SearchRequest
from retrieval.stores.expr import field_ref, literal
from tests.chat.chat_data import CAPTIONS, LABELS

QUESTION = "a cat sleeping on a sofa"


@pytest.fixture
def components(rag_settings: Settings, tiny_embedder: Embedder) -> Iterator[Components]:
    comps = build_components(rag_settings)
    comps._embedder = tiny_embedder
    yield comps
    comps.close()


@pytest.fixture
def chat(components: Components) -> ChatService:
    return ChatService(Searcher(components.embedder, components.store), ExtractiveAnswerer())


def cli_flags(settings: Settings) -> list[str]:
    return [
        "--uri", settings.uri, "--collection", settings.collection, "--model", settings.model,
        "--pretrained", "", "--checkpoint", str(settings.checkpoint), "--device", "cpu",
    ]


def test_extractive_answer_lists_the_best_matches_with_citations(
    chat: ChatService, components: Components
) -> None:
    query = ChatQuery(messages=(ChatMessage("user", QUESTION),), k=4)
    answer = chat.answer(query)
    expected = Searcher(components.embedder, components.store).search_text(
        QUESTION, SearchRequest(k=4)
    )
    assert [c.id for c in answer.citations] == [h.id for h in expected]
    assert [c.n for c in answer.citations] == [1, 2, 3, 4]
    assert answer.extractive is True and answer.model == EXTRACTIVE_MODEL
    lines = answer.text.splitlines()
    assert lines[0] == f'The best match for "{QUESTION}" is [1]. Retrieved items, best first:'
    for n, hit in enumerate(expected, start=1):
        line = lines[n]
        assert line.startswith(f'[{n}] "{" ".join(hit.caption.split())}"')
        assert f"score {hit.score:.4f}" in line and Path(hit.source).name in line
        assert f"label={hit.metadata['label']}" in line
    assert lines[-1] == NOTICE
    citation = answer.citations[0]
    assert citation.caption in CAPTIONS and citation.image_url == f"/items/{citation.id}/image"
    assert chat.answer(query) == answer  # deterministic


def test_extractive_stream_matches_the_answer(chat: ChatService) -> None:
    query = ChatQuery(messages=(ChatMessage("user", QUESTION),), k=3)
    events = list(chat.stream(query))
    final = events[-1]
    assert isinstance(final, FinalEvent)
    tokens = [e.delta for e in events[:-1] if isinstance(e, TokenEvent)]
    assert len(tokens) == len(events) - 1 > 10
    assert "".join(tokens) == final.answer.text == chat.answer(query).text


def test_filter_expression_limits_the_items(chat: ChatService) -> None:
    expr = f"{field_ref('metadata', 'label')} == {literal('dog')}"
    query = ChatQuery(messages=(ChatMessage("user", "an animal"),), k=8, expr=expr)
    answer = chat.answer(query)
    assert len(answer.citations) == LABELS.count("dog")
    assert {c.metadata["label"] for c in answer.citations} == {"dog"}


def test_empty_result_is_said_plainly(chat: ChatService) -> None:
    expr = f"{field_ref('metadata', 'label')} == {literal('whale')}"
    answer = chat.answer(ChatQuery(messages=(ChatMessage("user", "a whale"),), expr=expr))
    assert answer.citations == ()
    assert answer.text.startswith('No item in the collection matched "a whale"')


def test_follow_up_turn_searches_with_the_previous_question(chat: ChatService) -> None:
    conversation = (
        ChatMessage("user", QUESTION),
        ChatMessage("assistant", "Here are some [1]."),
        ChatMessage("user", "more like that"),
    )
    query = ChatQuery(messages=conversation, k=3)
    assert chat.query_text(query) == f"more like that {QUESTION}"
    assert len(chat.answer(query).citations) == 3


def test_cli_ask_json(rag_settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    flag = json.dumps({"label": ["cat", "bird"]})
    code = main(["ask", QUESTION, "--json", "-k", "3", "--filter", flag, *cli_flags(rag_settings)])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["extractive"] is True and out["model"] == EXTRACTIVE_MODEL
    assert out["query"] == QUESTION
    assert [c["n"] for c in out["citations"]] == [1, 2, 3]
    assert {c["metadata"]["label"] for c in out["citations"]} <= {"cat", "bird"}
    assert out["answer"].startswith(f'The best match for "{QUESTION}" is [1]')


def test_cli_ask_prints_answer_and_cited_items(
    rag_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ask", QUESTION, "--llm", "extractive", "--k", "2",
                 *cli_flags(rag_settings)]) == 0
    out = capsys.readouterr().out
    assert f'The best match for "{QUESTION}" is [1]' in out
    assert "cited items" in out and "[1]" in out and "[2]" in out


def test_cli_ask_reports_bad_filters_and_a_down_llm(
    rag_settings: Settings, closed_url: str, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    flags = cli_flags(rag_settings)
    assert main(["ask", "x", "--filter", "{not json", *flags]) == 2
    assert "--filter is not JSON" in capsys.readouterr().err
    assert main(["ask", "x", "--filter", '{"nosuchkey": 1}', *flags]) == 2
    assert "nosuchkey" in capsys.readouterr().err
    monkeypatch.setenv("MMRAG_LLM_BASE_URL", closed_url)
    monkeypatch.setenv("MMRAG_LLM_MAX_RETRIES", "0")
    assert main(["ask", "a cat", "--llm", "openai", *flags]) == 2
    assert f"cannot reach LLM endpoint {closed_url}" in capsys.readouterr().err
