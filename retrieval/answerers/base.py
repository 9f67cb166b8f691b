"""The answerer contract: numbered retrieved items and a conversation in, a cited answer out."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Iterator, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, Literal

from retrieval.answerers.context import (
    Citation,
    ContextBudget,
    ContextItem,
    build_context,
    citation_for,
    citations_for,
)
from retrieval.answerers.usage import estimated_usage
from retrieval.errors import ConfigError
from retrieval.types import Hit

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class ChatMessage:
    """One conversation turn (text only)."""

    role: Role
    content: str


@dataclass(frozen=True)
class GenerationOptions:
    """Per-request generation knobs a client may pass (None: the backend's default).

    ``stop``: the answer ends before the first of these strings. ``llm_fields``: chat-completions
    request fields an LLM backend sends as given (``response_format``, ``tools``, ``top_p``, ...);
    a backend that cannot honour one that shapes the answer refuses it (``unsupported``).
    """

    temperature: float | None = None
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    llm_fields: Mapping[str, Any] = field(default_factory=dict)


class UnsupportedParameterError(ConfigError):
    """A request parameter that would change the answer's contract and this backend cannot keep."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True)
class Answer:
    """A finished answer, the items it cites, its model, and whether it is extractive."""

    text: str
    citations: tuple[Citation, ...]
    model: str
    extractive: bool
    usage: Mapping[str, int] | None = None
    usage_estimated: bool = False
    finish_reason: str = "stop"
    tool_calls: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class TokenEvent:
    """A piece of answer text, in order."""

    delta: str


@dataclass(frozen=True)
class FinalEvent:
    """The last event of a stream: the whole answer with its citations."""

    answer: Answer


AnswerEvent = TokenEvent | FinalEvent


@dataclass(frozen=True)
class Prompt:
    """One request as a backend sees it: the conversation, the numbered context, the options."""

    messages: Sequence[ChatMessage]
    items: Sequence[ContextItem]
    options: GenerationOptions | None = None


class Response:
    """One answer being written: its text so far, the model that writes it, its token usage.

    A backend's ``execute`` may set ``model`` (what the server says answered), ``usage``,
    ``finish_reason`` ("stop", "length", "tool_calls", ...) and ``tool_calls`` (OpenAI's shape).
    Without a reported usage the answer carries an estimate (``answerers.usage``).
    """

    def __init__(self, prompt: Prompt, model: str) -> None:
        self.prompt = prompt
        self.model = model
        self.usage: Mapping[str, int] | None = None
        self.finish_reason = "stop"
        self.tool_calls: list[Mapping[str, Any]] = []
        self.pieces: list[str] = []

    def add(self, piece: str) -> TokenEvent:
        """Record a piece of the text; the event that carries it."""
        self.pieces.append(piece)
        return TokenEvent(piece)

    def answer(self, extractive: bool) -> Answer:
        """The finished answer, citing the items its text cites (all when it cites none).

        An extractive answer lists every item, so it cites every item.
        """
        text, items = "".join(self.pieces), self.prompt.items
        usage = self.usage
        if usage is None:
            usage = estimated_usage(self.prompt.messages, items, text)
        return Answer(
            text=text,
            citations=(
                tuple(citation_for(item) for item in items)
                if extractive
                else citations_for(text, items)
            ),
            model=self.model,
            extractive=extractive,
            usage=usage,
            usage_estimated=self.usage is None,
            finish_reason=self.finish_reason,
            tool_calls=tuple(self.tool_calls),
        )


class Answerer(ABC):
    """Writes an answer to the latest user turn from numbered retrieved items.

    A backend implements one method, ``execute``: the answer text for a ``Prompt``, in pieces.
    The base class does the rest: it budgets ``hits`` (ranked best first) into numbered context
    items (``retrieval.answerers.context``), and turns the pieces into one ``Answer``
    (``answer``) or into ``TokenEvent``s then exactly one ``FinalEvent`` (``stream``), citing
    the numbers the text cites. The async methods run ``execute`` in a worker thread; a backend
    with an async client overrides ``aexecute`` instead.
    """

    name: str
    model: str
    extractive: bool = False

    def __init__(self, budget: ContextBudget | None = None) -> None:
        self.budget = budget or ContextBudget()

    def unsupported(self, options: GenerationOptions | None) -> UnsupportedParameterError | None:
        """Why this backend cannot honour ``options`` (None: it can); LLM backends take all."""
        return None

    def check(self, options: GenerationOptions | None) -> None:
        """Raise ``UnsupportedParameterError`` when ``options`` ask what this backend cannot do."""
        problem = self.unsupported(options)
        if problem is not None:
            raise problem

    @abstractmethod
    def execute(self, prompt: Prompt, stream: bool, response: Response) -> Iterable[str]:
        """The answer text in pieces: a list when it is there at once, an iterator when it streams.

        ``stream`` is false when the caller wants the whole text at once (one piece will do).
        """

    async def aexecute(
        self, prompt: Prompt, stream: bool, response: Response
    ) -> AsyncGenerator[str, None]:
        """``execute`` without blocking the event loop (each step runs in a worker thread)."""
        pieces = await asyncio.to_thread(self.execute, prompt, stream, response)
        if isinstance(pieces, list | tuple):
            for piece in pieces:
                yield piece
            return
        iterator = iter(pieces)
        while (piece := await asyncio.to_thread(next, iterator, None)) is not None:
            yield piece

    def respond(
        self,
        messages: Sequence[ChatMessage],
        hits: Sequence[Hit],
        options: GenerationOptions | None,
    ) -> Response:
        """An empty response to the prompt made of ``messages`` and the budgeted ``hits``."""
        self.check(options)
        return Response(Prompt(messages, build_context(hits, self.budget), options), self.model)

    def answer(
        self,
        messages: Sequence[ChatMessage],
        hits: Sequence[Hit],
        options: GenerationOptions | None = None,
    ) -> Answer:
        """The whole answer at once."""
        response = self.respond(messages, hits, options)
        for piece in self.execute(response.prompt, False, response):
            response.add(piece)
        return response.answer(self.extractive)

    def stream(
        self,
        messages: Sequence[ChatMessage],
        hits: Sequence[Hit],
        options: GenerationOptions | None = None,
    ) -> Iterator[AnswerEvent]:
        """Token deltas, then a final event carrying the answer and its citations."""
        response = self.respond(messages, hits, options)
        for piece in self.execute(response.prompt, True, response):
            if piece:
                yield response.add(piece)
        yield FinalEvent(response.answer(self.extractive))

    async def aanswer(
        self,
        messages: Sequence[ChatMessage],
        hits: Sequence[Hit],
        options: GenerationOptions | None = None,
    ) -> Answer:
        """``answer`` without blocking the event loop."""
        response = self.respond(messages, hits, options)
        async for piece in self.aexecute(response.prompt, False, response):
            response.add(piece)
        return response.answer(self.extractive)

    async def astream(
        self,
        messages: Sequence[ChatMessage],
        hits: Sequence[Hit],
        options: GenerationOptions | None = None,
    ) -> AsyncIterator[AnswerEvent]:
        """``stream`` without blocking the event loop."""
        response = self.respond(messages, hits, options)
        async with aclosing(self.aexecute(response.prompt, True, response)) as pieces:
            async for piece in pieces:  # closed at once when the caller stops early
                if piece:
                    yield response.add(piece)
        yield FinalEvent(response.answer(self.extractive))

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
