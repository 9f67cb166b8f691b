"""Retrieval-augmented chat: conversation -> retrieval query -> hits -> a cited answer.

Retrieval query rule: the latest user turn, plus earlier user turns when the latest one leans
on them. A turn leans on the conversation when it has fewer than ``SHORT_TURN_WORDS`` words or
contains a referring word (``ANAPHORA``: it, that, those, them, more, ...). Then the user turn
before it is added, and so on while the added turn leans on the conversation too, up to
``MAX_QUERY_TURNS`` turns. The latest turn comes first (CLIP's text encoder keeps the start of
long texts), earlier turns follow, most recent first, each cut to ``MAX_EARLIER_CHARS``.
Assistant turns never go into the query (they hold the model's words, not the user's intent).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field

from retrieval.answerers.base import Answer, Answerer, AnswerEvent, ChatMessage, GenerationOptions
from retrieval.errors import ConfigError
from retrieval.search import Searcher, SearchRequest
from retrieval.stores.base import Fusion
from retrieval.types import Hit

SHORT_TURN_WORDS = 4
MAX_QUERY_TURNS = 3
MAX_EARLIER_CHARS = 200
DEFAULT_K = 5
# What a conversation may hold, for every route that takes one (/chat and /v1): each caps what
# reaches the LLM. The prompt itself keeps only the recent turns (answerers.prompt).
MAX_MESSAGES = 100
MAX_MESSAGE_CHARS = 32_000
MAX_CONVERSATION_CHARS = 200_000
ANAPHORA = frozenset({
    "it", "its", "it's", "that", "this", "those", "these", "them", "they", "their", "theirs",
    "ones", "more", "another", "other", "others", "same", "similar", "else",
})
_WORD = re.compile(r"[\w']+")
AsyncRetriever = Callable[[str, SearchRequest], Awaitable[list[Hit]]]


def leans_on_history(text: str) -> bool:
    """Whether a user turn is too short or referring to stand alone as a query."""
    words = _WORD.findall(text.lower())
    return len(words) < SHORT_TURN_WORDS or any(word in ANAPHORA for word in words)


def retrieval_query(messages: Sequence[ChatMessage], max_chars: int = 1000) -> str:
    """The text to search for (see the module docstring); ConfigError without a user turn."""
    turns = [" ".join(m.content.split()) for m in messages if m.role == "user"]
    turns = [t for t in turns if t]
    if not turns:
        raise ConfigError("the conversation has no user message to answer")
    parts = [turns[-1]]
    index = len(turns) - 1
    while index > 0 and len(parts) < MAX_QUERY_TURNS and leans_on_history(turns[index]):
        index -= 1
        parts.append(turns[index][:MAX_EARLIER_CHARS])
    return " ".join(parts)[:max_chars]


@dataclass(frozen=True)
class LimitBreach:
    """Which cap a conversation goes over: the field, a code, and a sentence saying what to do."""

    param: str
    code: str
    message: str


def conversation_breach(contents: Sequence[str]) -> LimitBreach | None:
    """The first cap the message texts go over (count, one message's size, total), or None."""
    if len(contents) > MAX_MESSAGES:
        return LimitBreach(
            "messages", "array_above_max_length",
            f"The conversation has {len(contents)} messages; the cap is {MAX_MESSAGES}. "
            "Send only the recent turns.",
        )
    for index, text in enumerate(contents):
        if len(text) > MAX_MESSAGE_CHARS:
            return LimitBreach(
                f"messages[{index}].content", "string_above_max_length",
                f"Message {index} has {len(text)} characters; the cap is {MAX_MESSAGE_CHARS}. "
                "Shorten it or split it over several turns.",
            )
    total = sum(len(text) for text in contents)
    if total > MAX_CONVERSATION_CHARS:
        return LimitBreach(
            "messages", "context_length_exceeded",
            f"The conversation has {total} characters in all; the cap is "
            f"{MAX_CONVERSATION_CHARS}. Send fewer or shorter turns.",
        )
    return None


@dataclass(frozen=True)
class ChatQuery:
    """One chat turn to answer: the conversation, how many items, which ones, how to generate."""

    messages: tuple[ChatMessage, ...]
    k: int = DEFAULT_K
    expr: str | None = None
    options: GenerationOptions | None = None
    mode: str | None = None  # vector | keyword | hybrid; None: the collection's default
    fusion: Fusion = field(default_factory=Fusion)

    def request(self) -> SearchRequest:
        """The search this turn retrieves with."""
        return SearchRequest(k=self.k, expr=self.expr, mode=self.mode, fusion=self.fusion)


class ChatService:
    """Searches the collection for the conversation's latest question and answers from the hits.

    The sync methods block (CLI). The async ones keep the event loop free: retrieval goes
    through ``retriever(text, k, expr)`` when given (the API passes its micro-batched,
    reconnecting search), else the embedder and store run in worker threads; the answerer's own
    async methods do the rest.
    """

    def __init__(
        self,
        searcher: Searcher | None,
        answerer: Answerer,
        *,
        retriever: AsyncRetriever | None = None,
        max_query_chars: int = 1000,
    ) -> None:
        if searcher is None and retriever is None:
            raise ConfigError("ChatService needs a searcher or an async retriever")
        self.searcher = searcher
        self.answerer = answerer
        self.retriever = retriever
        self.max_query_chars = max_query_chars

    def query_text(self, query: ChatQuery) -> str:
        """The retrieval query of a conversation (see the module docstring)."""
        return retrieval_query(query.messages, self.max_query_chars)

    # ----- sync -----------------------------------------------------------------------------

    def retrieve(self, query: ChatQuery) -> list[Hit]:
        """The hits for the conversation's retrieval query."""
        if self.searcher is None:
            raise ConfigError("this ChatService has only an async retriever; use aretrieve")
        return self.searcher.search_text(self.query_text(query), query.request())

    def answer(self, query: ChatQuery) -> Answer:
        """Retrieve, then answer at once."""
        hits = self.retrieve(query)
        return self.answerer.answer(query.messages, hits, query.options)

    def stream(self, query: ChatQuery) -> Iterator[AnswerEvent]:
        """Retrieve, then stream the answer."""
        hits = self.retrieve(query)
        yield from self.answerer.stream(query.messages, hits, query.options)

    # ----- async ----------------------------------------------------------------------------

    async def aretrieve(self, query: ChatQuery) -> list[Hit]:
        """``retrieve`` without blocking the event loop."""
        text = self.query_text(query)
        if self.retriever is not None:
            return await self.retriever(text, query.request())
        return await asyncio.to_thread(self.retrieve, query)

    async def aanswer(self, query: ChatQuery) -> Answer:
        """``answer`` without blocking the event loop."""
        hits = await self.aretrieve(query)
        return await self.answerer.aanswer(query.messages, hits, query.options)

    async def astream(self, query: ChatQuery) -> AsyncIterator[AnswerEvent]:
        """``stream`` without blocking the event loop."""
        hits = await self.aretrieve(query)
        async for event in self.answerer.astream(query.messages, hits, query.options):
            yield event
