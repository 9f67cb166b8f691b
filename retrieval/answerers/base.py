"""The answerer contract: numbered retrieved items and a conversation in, a cited answer out."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from retrieval.types import Hit

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class ChatMessage:
    """One conversation turn (text only)."""

    role: Role
    content: str


@dataclass(frozen=True)
class GenerationOptions:
    """Per-request generation knobs a client may pass (None: the backend's default)."""

    temperature: float | None = None
    max_tokens: int | None = None


@dataclass(frozen=True)
class Citation:
    """One retrieved item an answer cites, numbered as in the prompt."""

    n: int
    id: str
    score: float
    caption: str
    image_url: str
    source: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "n": self.n,
            "id": self.id,
            "score": round(float(self.score), 6),
            "caption": self.caption,
            "image_url": self.image_url,
            "source": self.source,
            "metadata": dict(self.metadata),
        }


@dataclass(frozen=True)
class Answer:
    """A finished answer, the items it cites, its model, and whether it is extractive."""

    text: str
    citations: tuple[Citation, ...]
    model: str
    extractive: bool
    usage: Mapping[str, int] | None = None


@dataclass(frozen=True)
class TokenEvent:
    """A piece of answer text, in order."""

    delta: str


@dataclass(frozen=True)
class FinalEvent:
    """The last event of a stream: the whole answer with its citations."""

    answer: Answer


AnswerEvent = TokenEvent | FinalEvent


class Answerer(ABC):
    """Writes an answer to the latest user turn from numbered retrieved items.

    ``hits`` come ranked best first; the answerer budgets them into numbered context items
    (``retrieval.answerers.context``) and cites those numbers. ``stream`` yields
    ``TokenEvent``s and then exactly one ``FinalEvent``. The async methods default to running
    the sync ones in a worker thread; network backends override them with async clients.
    """

    name: str

    @abstractmethod
    def answer(
        self,
        messages: Sequence[ChatMessage],
        hits: Sequence[Hit],
        options: GenerationOptions | None = None,
    ) -> Answer:
        """The whole answer at once."""

    @abstractmethod
    def stream(
        self,
        messages: Sequence[ChatMessage],
        hits: Sequence[Hit],
        options: GenerationOptions | None = None,
    ) -> Iterator[AnswerEvent]:
        """Token deltas, then a final event carrying the answer and its citations."""

    async def aanswer(
        self,
        messages: Sequence[ChatMessage],
        hits: Sequence[Hit],
        options: GenerationOptions | None = None,
    ) -> Answer:
        """``answer`` without blocking the event loop."""
        return await asyncio.to_thread(self.answer, messages, hits, options)

    async def astream(
        self,
        messages: Sequence[ChatMessage],
        hits: Sequence[Hit],
        options: GenerationOptions | None = None,
    ) -> AsyncIterator[AnswerEvent]:
        """``stream`` without blocking the event loop (each step runs in a worker thread)."""
        iterator = self.stream(messages, hits, options)
        sentinel = object()
        while True:
            event = await asyncio.to_thread(next, iterator, sentinel)
            if event is sentinel:
                return
            assert isinstance(event, TokenEvent | FinalEvent)
            yield event

    def close(self) -> None:  # noqa: B027 - optional hook, most answerers hold nothing
        """Release clients and connections."""

    async def aclose(self) -> None:
        """Release async clients and connections."""
        self.close()


def latest_user_text(messages: Sequence[ChatMessage]) -> str:
    """The content of the last user message ('' when there is none)."""
    for message in reversed(messages):
        if message.role == "user":
            return message.content
    return ""
