"""Request and response bodies of ``/v1``, as OpenAI clients send and read them."""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from retrieval.api.filters import FILTER_DESCRIPTION
from retrieval.api.routers.chat import MAX_CHAT_K
from retrieval.rag import DEFAULT_K

MODEL_ID = "mmrag"
OWNER = "mmrag"
CREATED = int(time.time())
_MODEL = "mmrag, or mmrag:<collection>"
_K = "mmrag: items to retrieve"
_FILTER = f"mmrag: {FILTER_DESCRIPTION}"


class ContentPart(BaseModel):
    """One content part (``text`` parts are used, others ignored)."""

    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None


class OpenAIMessage(BaseModel):
    """A message as OpenAI clients send it."""

    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        """The text of the message (text parts joined by newlines)."""
        if isinstance(self.content, str):
            return self.content
        if not self.content:
            return ""
        return "\n".join(p.text for p in self.content if p.type == "text" and p.text)


class StreamOptions(BaseModel):
    """OpenAI's ``stream_options``."""

    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class GenerationFields(BaseModel):
    """The fields both completion endpoints share (the others: ``requests.audit``)."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(description=_MODEL)
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    max_tokens: int | None = Field(None, ge=1)
    n: int | None = Field(1, ge=1)
    stop: str | list[str] | None = None
    k: int = Field(DEFAULT_K, ge=1, le=MAX_CHAT_K, description=_K)
    filter: dict[str, Any] | None = Field(None, description=_FILTER)

    def stops(self) -> tuple[str, ...]:
        """``stop`` as a tuple of strings."""
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)


class ChatCompletionRequest(GenerationFields):
    """An OpenAI chat-completions request (other OpenAI fields: see ``requests.audit``)."""

    messages: list[OpenAIMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)


class CompletionRequest(GenerationFields):
    """An OpenAI (legacy) completions request: one text prompt, answered from the collection."""

    prompt: str | list[str] | list[int] | list[list[int]] = Field(
        description="the question (one string; token arrays are not supported)"
    )
    echo: bool | None = False


class ModelCard(BaseModel):
    """One entry of ``/v1/models``."""

    id: str
    object: str = "model"
    created: int = CREATED
    owned_by: str = OWNER


class ModelList(BaseModel):
    """The ``/v1/models`` list."""

    object: str = "list"
    data: list[ModelCard]


# ----- documented responses (the routes build them as dicts) --------------------------------


class Usage(BaseModel):
    """Token counts: the LLM's, or an estimate (about four characters a token) when it has none."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class Citation(BaseModel):
    """mmrag's extension: an item the answer cites as [n], with this API's image URLs."""

    model_config = ConfigDict(extra="allow")

    n: int
    id: str
    score: float
    image_url: str
    thumbnail_url: str


class AssistantMessage(BaseModel):
    """The answer: text, or tool calls when the client passed ``tools`` to an LLM backend."""

    role: str = "assistant"
    content: str | None
    tool_calls: list[dict[str, Any]] | None = None


class ChatChoice(BaseModel):
    """The one choice of a chat completion."""

    index: int
    message: AssistantMessage
    logprobs: None = None
    finish_reason: str


class ChatCompletion(BaseModel):
    """A ``chat.completion`` (``stream=false``)."""

    id: str
    object: str = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    citations: list[Citation]


class TextChoice(BaseModel):
    """The one choice of a text completion."""

    text: str
    index: int
    logprobs: None = None
    finish_reason: str


class TextCompletion(BaseModel):
    """A ``text_completion`` (``stream=false``)."""

    id: str
    object: str = "text_completion"
    created: int
    model: str
    choices: list[TextChoice]
    usage: Usage
    citations: list[Citation]


class OpenAIErrorDetail(BaseModel):
    """What went wrong, in OpenAI's terms."""

    message: str
    type: str = Field(description="invalid_request_error, server_error, ...")
    param: str | None = Field(description="the request field at fault, when one is")
    code: str | None = Field(description="e.g. model_not_found, invalid_api_key")


class OpenAIErrorBody(BaseModel):
    """Every ``/v1`` error."""

    error: OpenAIErrorDetail


def openai_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for errors in OpenAI's shape."""
    reasons = {
        400: "invalid or unsupported request field (param names it)",
        401: "missing or wrong API key (code invalid_api_key)",
        404: "unknown model or collection (code model_not_found)",
        413: "request body over the cap",
        502: "the LLM refused the request or failed",
        503: "the LLM, the vector store or the model is unavailable",
    }
    return {s: {"model": OpenAIErrorBody, "description": reasons.get(s, "error")}
            for s in statuses}


def sse_response(model: type[BaseModel], chunk: str) -> dict[str, Any]:
    """The 200 entry: JSON ``model``, or with ``stream=true`` Server-Sent Events of ``chunk``s."""
    return {
        "model": model,
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
        "description": f"JSON, or with stream=true Server-Sent Events: `data: {{{chunk}}}` lines "
        "(the last one carries `finish_reason` and `citations`; with "
        "`stream_options.include_usage` one more carries `usage`), then `data: [DONE]`. A "
        "failure mid-stream, or the server stopping past its grace period, is one "
        '`data: {"error": {...}}` line that ends the stream.',
    }
