"""What both completion endpoints share: model -> collection, caps, and one grounded answer."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import Request

from retrieval.answerers import Answer, AnswerEvent, ChatMessage, GenerationOptions
from retrieval.api.openai.errors import OpenAIError
from retrieval.api.openai.schemas import MODEL_ID
from retrieval.api.routers.chat import (
    chat_query,
    chat_service,
    citations_out,
    get_answerer,
    primed,
)
from retrieval.api.service import Service
from retrieval.errors import CollectionNotFoundError
from retrieval.rag import ChatQuery, ChatService, conversation_breach

COLLECTION_MODEL = re.compile(r"mmrag:(?P<name>[A-Za-z_][A-Za-z0-9_]{0,254})\Z")


def model_collection(model: str, service: Service) -> str | None:
    """The collection a model id names (None: the default); 404 model_not_found otherwise."""
    if model == MODEL_ID:
        return None
    match = COLLECTION_MODEL.match(model)
    if match is None:
        raise OpenAIError(
            404,
            f"The model {model[:100]!r} does not exist. This server serves {MODEL_ID!r} and "
            f"'{MODEL_ID}:<collection>' (see GET /v1/models).",
            code="model_not_found", param="model",
        )
    name = match["name"]
    return None if name == service.settings.collection else name


def check_caps(contents: Sequence[str]) -> None:
    """OpenAIError 400 when the conversation goes over the caps /chat has too."""
    breach = conversation_breach(contents)
    if breach is not None:
        raise OpenAIError(400, breach.message, code=breach.code, param=breach.param)


@dataclass(frozen=True)
class Grounded:
    """One request to answer from a collection: the chat service, the query, where it looks."""

    request: Request
    service: Service
    model: str
    collection: str | None
    chat: ChatService
    query: ChatQuery

    async def answer(self) -> Answer:
        """The whole answer (a missing collection is the model's 404)."""
        with missing_model(self.model):
            return await self.chat.aanswer(self.query)

    async def stream(self) -> AsyncIterator[AnswerEvent]:
        """The answer's events, started now so early errors become statuses."""
        with missing_model(self.model):
            return await primed(self.chat.astream(self.query))

    def citations(self, answer: Answer) -> list[dict[str, Any]]:
        """The answer's citations with this API's image URLs."""
        cited = citations_out(self.request, self.service, answer, self.collection)
        return [c.model_dump() for c in cited]


@contextmanager
def missing_model(model: str) -> Iterator[None]:
    """Turn a missing collection into OpenAI's ``model_not_found``."""
    try:
        yield
    except CollectionNotFoundError as exc:
        raise OpenAIError(404, f"The model {model!r} does not exist: {exc}",
                          code="model_not_found", param="model") from exc


async def grounded(
    request: Request,
    service: Service,
    *,
    model: str,
    messages: list[ChatMessage],
    k: int,
    filter: dict[str, Any] | None,
    options: GenerationOptions,
) -> Grounded:
    """Check the model and the options against the answerer (before retrieving); the query."""
    collection = model_collection(model, service)
    get_answerer(request).check(options)
    with missing_model(model):
        query = await chat_query(
            service, messages, k=k, filter=filter, collection=collection, options=options
        )
    return Grounded(request, service, model, collection,
                    chat_service(request, service, collection), query)
