"""The offline answerer: no generation, a deterministic summary of the best-matching items."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any

from retrieval.answerers.base import (
    Answer,
    Answerer,
    AnswerEvent,
    ChatMessage,
    FinalEvent,
    GenerationOptions,
    TokenEvent,
    latest_user_text,
)
from retrieval.answerers.context import (
    ContextBudget,
    ContextItem,
    build_context,
    citation_for,
    shorten,
    source_name,
)
from retrieval.types import Hit

EXTRACTIVE_MODEL = "mmrag-extractive"
NOTICE = "Extractive answer: no language model wrote this; it lists the retrieved items."
MAX_QUESTION_CHARS = 200
MAX_METADATA_FIELDS = 6
_PIECES = re.compile(r"\s*\S+")


class ExtractiveAnswerer(Answerer):
    """Answers with the retrieved items themselves: rank, caption, score, source and metadata."""

    name = "extractive"

    def __init__(self, budget: ContextBudget | None = None) -> None:
        self.budget = budget or ContextBudget()

    def answer(
        self,
        messages: Sequence[ChatMessage],
        hits: Sequence[Hit],
        options: GenerationOptions | None = None,
    ) -> Answer:
        """The item list as text, citing every listed item."""
        items = build_context(hits, self.budget)
        text = render(latest_user_text(messages), items)
        citations = tuple(citation_for(item) for item in items)
        return Answer(text=text, citations=citations, model=EXTRACTIVE_MODEL, extractive=True)

    def stream(
        self,
        messages: Sequence[ChatMessage],
        hits: Sequence[Hit],
        options: GenerationOptions | None = None,
    ) -> Iterator[AnswerEvent]:
        """The same text, word by word, then the final event."""
        answer = self.answer(messages, hits, options)
        yield from _events(answer)

    async def astream(
        self,
        messages: Sequence[ChatMessage],
        hits: Sequence[Hit],
        options: GenerationOptions | None = None,
    ) -> AsyncIterator[AnswerEvent]:
        """The same events; the text is built once in a worker thread."""
        answer = await asyncio.to_thread(self.answer, messages, hits, options)
        for event in _events(answer):
            yield event


def _events(answer: Answer) -> Iterator[AnswerEvent]:
    """The answer's text word by word, then the final event."""
    for piece in _PIECES.findall(answer.text):
        yield TokenEvent(piece)
    yield FinalEvent(answer)


def render(question: str, items: Sequence[ContextItem]) -> str:
    """The extractive answer text (deterministic for the same question and items)."""
    asked = shorten(" ".join(question.split()), MAX_QUESTION_CHARS)
    if not items:
        return f'No item in the collection matched "{asked}". {NOTICE}'
    lines = [f'The best match for "{asked}" is [1]. Retrieved items, best first:']
    lines += [_line(item) for item in items]
    lines.append(NOTICE)
    return "\n".join(lines)


def _line(item: ContextItem) -> str:
    """One item as ``[n] "caption" (score 0.1234; file.jpg; key=value, ...)``."""
    caption = f'"{item.caption}"' if item.caption else "(no caption)"
    details = [f"score {item.hit.score:.4f}"]
    name = source_name(item.hit.source)
    if name:
        details.append(name)
    meta = _metadata_text(item.metadata)
    if meta:
        details.append(meta)
    return f"[{item.n}] {caption} ({'; '.join(details)})"


def _metadata_text(metadata: Mapping[str, Any]) -> str:
    """``key=value`` pairs of the first few metadata fields."""
    pairs = [f"{key}={value}" for key, value in list(metadata.items())[:MAX_METADATA_FIELDS]]
    return ", ".join(" ".join(pair.split()) for pair in pairs)
