"""POST /chat: retrieval-augmented answers citing the retrieved items, as JSON or SSE.

Also the API-side chat wiring shared with ``openai_compat``: the process-wide answerer
(``MMRAG_LLM``), retrieval through the service's micro-batched, reconnecting search, and how LLM
failures become HTTP errors (503 endpoint down, 502 bad key / unknown model / other upstream
errors: the client's own request and key were fine).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Literal

import numpy as np
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator

from retrieval.answerers import (
    Answer,
    Answerer,
    AnswerEvent,
    ChatMessage,
    Citation,
    FinalEvent,
    GenerationOptions,
    create_answerer,
)
from retrieval.api.deps import ServiceDep
from retrieval.api.errors import ApiError, classify, error_body
from retrieval.api.filters import FILTER_DESCRIPTION, FILTER_EXAMPLE
from retrieval.api.images import read_original
from retrieval.api.routers.common import image_urls, non_default, search_params
from retrieval.api.schemas import COLLECTION_PATTERN, SearchOptions, error_responses
from retrieval.api.service import Service
from retrieval.api.sse import SHUTDOWN_MESSAGE, EventStreamResponse, sse
from retrieval.errors import (
    LLMAuthenticationError,
    LLMError,
    LLMModelNotFoundError,
    LLMUnavailableError,
    MmragError,
)
from retrieval.rag import (
    DEFAULT_K,
    MAX_CONVERSATION_CHARS,
    MAX_MESSAGE_CHARS,
    MAX_MESSAGES,
    ChatQuery,
    ChatService,
    conversation_breach,
)
from retrieval.search import SearchRequest
from retrieval.search_options import Mode, hybrid_weights_field, mode_field
from retrieval.types import Hit, Record

router = APIRouter(tags=["chat"])
MAX_CHAT_K = 100


# ----- schemas ------------------------------------------------------------------------------


class ChatMessageIn(BaseModel):
    """One conversation turn."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant"]
    content: str = Field(max_length=MAX_MESSAGE_CHARS)


class ChatRequest(BaseModel):
    """A conversation to answer from the collection."""

    model_config = ConfigDict(extra="forbid")

    messages: list[ChatMessageIn] = Field(
        min_length=1, max_length=MAX_MESSAGES,
        description="the conversation; retrieval uses the latest user turn (plus earlier user "
        "turns when it is short or refers back: 'more like that'); at most "
        f"{MAX_MESSAGES} messages of {MAX_MESSAGE_CHARS} characters, "
        f"{MAX_CONVERSATION_CHARS} in all",
    )
    k: int = Field(DEFAULT_K, ge=1, le=MAX_CHAT_K, description="items to retrieve")
    filter: dict[str, Any] | None = Field(
        None, description=FILTER_DESCRIPTION, examples=[FILTER_EXAMPLE]
    )
    collection: str | None = Field(
        None, pattern=COLLECTION_PATTERN, description="collection (default: the server's)"
    )
    mode: Mode | None = mode_field()
    hybrid_weights: list[float] | None = hybrid_weights_field()
    stream: bool = Field(False, description="answer as Server-Sent Events")
    temperature: float | None = Field(None, ge=0.0, le=2.0, description="passed to the LLM")
    max_tokens: int | None = Field(None, ge=1, le=32_768, description="passed to the LLM")

    @model_validator(mode="after")
    def _within_caps(self) -> ChatRequest:
        """The whole conversation within the shared caps (each message is checked above)."""
        breach = conversation_breach([m.content for m in self.messages])
        if breach is not None:
            raise ValueError(breach.message)
        return self


class CitationOut(BaseModel):
    """A retrieved item the answer cites as [n]."""

    n: int = Field(description="the number the answer cites, [n]")
    id: str
    score: float
    caption: str
    metadata: dict[str, Any]
    source: str
    image_url: str = Field(description="this API's URL of the original image")
    thumbnail_url: str = Field(description="this API's URL of a 256-px thumbnail")
    modality: str = Field(
        "image", description="image, or text: a passage of a text document (its text is the "
        "caption; it has no image)"
    )
    document: str = Field(
        "", description="a text passage's document and position, e.g. 'notes.md, passage 2 "
        "of 5' (empty for images)"
    )


class ChatResponse(BaseModel):
    """A grounded answer and the items it cites."""

    answer: str
    citations: list[CitationOut]
    model: str = Field(description="the model that wrote the answer (mmrag-extractive: none)")
    extractive: bool = Field(description="true when the answer lists items, not generated")
    query: str = Field(description="the text the collection was searched for")


# ----- shared wiring ------------------------------------------------------------------------


def load_item_image(hit: Hit) -> bytes | None:
    """A hit's image bytes for vision models: local files and video frames, never URLs."""
    if hit.source.startswith(("http://", "https://")):
        return None
    record = Record(id=hit.id, vector=np.zeros(0, dtype=np.float32), source=hit.source)
    try:
        return read_original(record).data
    except ApiError:
        return None


def get_answerer(request: Request) -> Answerer:
    """The app's answerer (``app.state.answerer``, created from settings on first use)."""
    answerer: Answerer | None = getattr(request.app.state, "answerer", None)
    if answerer is None:
        answerer = create_answerer(request.app.state.settings, load_image=load_item_image)
        request.app.state.answerer = answerer
    return answerer


def llm_api_error(exc: LLMError) -> ApiError:
    """The HTTP answer for an LLM failure."""
    if isinstance(exc, LLMUnavailableError):
        return ApiError(503, str(exc), type="llm_unavailable")
    if isinstance(exc, LLMAuthenticationError):
        return ApiError(502, str(exc), type="llm_authentication_failed")
    if isinstance(exc, LLMModelNotFoundError):
        return ApiError(502, str(exc), type="llm_model_not_found")
    return ApiError(502, str(exc), type="llm_error")


def api_error(exc: MmragError) -> ApiError:
    """Any mmrag error as an ApiError (LLM errors mapped as above)."""
    return llm_api_error(exc) if isinstance(exc, LLMError) else classify(exc)


def chat_service(request: Request, service: Service, collection: str | None) -> ChatService:
    """A ChatService retrieving through the service (model thread, store pool, reconnects)."""

    async def retrieve(text: str, wanted: SearchRequest) -> list[Hit]:
        params = await service.searches.resolve(collection, wanted, text=True)
        if params.mode == "keyword":
            return await service.searches.keyword(text, collection, params)
        vector = await service.models.embed_text(text)
        return await service.searches.search(vector, collection, params, text=text)

    return ChatService(
        None,
        get_answerer(request),
        retriever=retrieve,
        max_query_chars=service.settings.max_query_chars,
    )


async def chat_query(
    service: Service,
    messages: list[ChatMessage],
    *,
    k: int,
    filter: dict[str, Any] | None,
    collection: str | None,
    options: GenerationOptions,
    mode: str | None = None,
    hybrid_weights: list[float] | None = None,
) -> ChatQuery:
    """The query, with the structured filter checked and turned into a safe expression."""
    options_in = SearchOptions.model_validate({
        "k": k, "filter": filter, "collection": collection, "mode": mode,
        "hybrid_weights": hybrid_weights,
    })
    params = await search_params(service, options_in)
    return ChatQuery(
        messages=tuple(messages), k=k, expr=params.expr, options=options, mode=params.mode,
        fusion=params.fusion,
    )


async def primed(events: AsyncIterator[AnswerEvent]) -> AsyncIterator[AnswerEvent]:
    """Start a stream now, so retrieval and LLM connection errors become HTTP statuses."""
    first = await anext(events)

    async def replay() -> AsyncIterator[AnswerEvent]:
        try:
            yield first
            async for event in events:
                yield event
        finally:  # a client that hangs up must not leave the LLM stream open
            await aclose(events)

    return replay()


async def aclose(events: AsyncIterator[AnswerEvent]) -> None:
    """Close an async generator (no-op for other iterators)."""
    close = getattr(events, "aclose", None)
    if close is not None:
        await close()


def citation_out(request: Request, citation: Citation, collection: str | None) -> CitationOut:
    """A citation with this API's image URLs."""
    original, thumbnail = image_urls(request, citation.id, collection)
    return CitationOut(
        n=citation.n,
        id=citation.id,
        score=float(citation.score),
        caption=citation.caption,
        metadata=dict(citation.metadata),
        source=citation.source,
        image_url=original,
        thumbnail_url=thumbnail,
        modality=citation.modality,
        document=citation.document,
    )


def citations_out(
    request: Request, service: Service, answer: Answer, collection: str | None
) -> list[CitationOut]:
    """Every citation of an answer, with URLs (collection shown when not the default)."""
    shown = non_default(service, collection)
    return [citation_out(request, c, shown) for c in answer.citations]


# ----- route --------------------------------------------------------------------------------


@router.post(
    "/chat",
    response_model=ChatResponse,
    summary="Answer from the collection, citing the retrieved items",
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "JSON, or with stream=true Server-Sent Events: `token` events "
            '(`{"delta": ...}`), one `citations` event (`{"answer", "citations", "model", '
            '"extractive", "query"}`), then `done`; a failure mid-stream, or the server '
            "stopping (SIGTERM) past its grace period, is an `error` event that ends the stream",
        },
        **error_responses(401, 404, 409, 422, 502, 503),
    },
)
async def chat(body: ChatRequest, request: Request, service: ServiceDep) -> Any:
    """Retrieve items for the latest user turn and answer from them, citing them as [n]."""
    messages = [ChatMessage(role=m.role, content=m.content) for m in body.messages]
    options = GenerationOptions(temperature=body.temperature, max_tokens=body.max_tokens)
    query = await chat_query(
        service, messages, k=body.k, filter=body.filter, collection=body.collection,
        options=options, mode=body.mode, hybrid_weights=body.hybrid_weights,
    )
    chat_svc = chat_service(request, service, body.collection)
    text = chat_svc.query_text(query)
    try:
        if not body.stream:
            answer = await chat_svc.aanswer(query)
            return ChatResponse(
                answer=answer.text,
                citations=citations_out(request, service, answer, body.collection),
                model=answer.model,
                extractive=answer.extractive,
                query=text,
            )
        events = await primed(chat_svc.astream(query))
    except LLMError as exc:
        raise llm_api_error(exc) from exc

    async def stream() -> AsyncIterator[str]:
        try:
            async for event in events:
                if isinstance(event, FinalEvent):
                    answer = event.answer
                    cited = citations_out(request, service, answer, body.collection)
                    yield sse("citations", {
                        "answer": answer.text,
                        "citations": [c.model_dump() for c in cited],
                        "model": answer.model,
                        "extractive": answer.extractive,
                        "query": text,
                    })
                else:
                    yield sse("token", {"delta": event.delta})
        except MmragError as exc:
            failure = api_error(exc)
            yield sse("error", error_body(failure.type, failure.message))
            return
        yield sse("done", {})

    closing = sse("error", error_body("server_shutting_down", SHUTDOWN_MESSAGE))
    return EventStreamResponse(stream(), closing)
