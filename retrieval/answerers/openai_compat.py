"""The LLM answerer: any OpenAI-compatible chat-completions endpoint via the official SDK.

Works with OpenAI, vLLM, Ollama (``http://localhost:11434/v1``), llama.cpp server, LM Studio and
others. The SDK retries connection errors, 408, 409, 429 and 5xx answers ``max_retries`` times
with exponential backoff and jitter; every failure surfaces as an ``LLMError`` subclass whose
message names the endpoint and, where it matters, the model.

Vision (``MMRAG_LLM_VISION``): ``on`` sends the top ``max_images`` retrieved images as
``image_url`` parts (JPEG data URIs, longest side ``image_px``) next to their captions; ``off``
sends captions and metadata only; ``auto`` is ``on`` for model names matching
``VISION_MODEL_PATTERNS`` (compared lowercase, on the part after the last ``/``) and ``off``
otherwise. Items whose image cannot be loaded still go as text.
"""

from __future__ import annotations

import asyncio
import fnmatch
from collections.abc import AsyncGenerator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Literal

import openai

from retrieval.answerers.base import Answerer, GenerationOptions, Prompt, Response
from retrieval.answerers.context import ContextBudget, ContextItem
from retrieval.answerers.images import DEFAULT_MAX_PX, ImageLoader, image_data_uri
from retrieval.answerers.prompt import build_messages
from retrieval.errors import (
    LLMAuthenticationError,
    LLMError,
    LLMModelNotFoundError,
    LLMUnavailableError,
)

Vision = Literal["auto", "on", "off"]
NO_KEY = "no-key"  # local servers (Ollama, llama.cpp, vLLM without --api-key) ignore it
VISION_MODEL_PATTERNS = (
    "gpt-4o*", "chatgpt-4o*", "gpt-4.1*", "gpt-4-turbo*", "gpt-4-vision*", "gpt-5*",
    "o1", "o1-2*", "o3", "o3-2*", "o3-pro*", "o4*", "claude-3*", "claude-*-4*", "gemini*",
    "llava*", "bakllava*", "qwen*vl*", "*-vl*", "*vision*", "gemma3*", "gemma-3*",
    "pixtral*", "minicpm-v*", "moondream*", "internvl*", "phi-3.5-vision*", "phi-4-multimodal*",
    "idefics*", "smolvlm*", "molmo*", "llama4*", "llama-4*", "mistral-small3.1*",
    "mistral-small-3.1*", "mistral-small-3.2*",
)


def is_vision_model(model: str) -> bool:
    """Whether a model name looks vision-capable (see ``VISION_MODEL_PATTERNS``)."""
    name = model.strip().lower().rsplit("/", 1)[-1]
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in VISION_MODEL_PATTERNS)


def vision_enabled(mode: Vision, model: str) -> bool:
    """Resolve ``auto|on|off`` for one model."""
    if mode == "auto":
        return is_vision_model(model)
    return mode == "on"


class OpenAICompatibleAnswerer(Answerer):
    """Grounded answers from a chat-completions endpoint, citing the numbered items."""

    name = "openai"

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str | None = None,
        vision: Vision = "auto",
        timeout_s: float = 60.0,
        max_retries: int = 2,
        budget: ContextBudget | None = None,
        load_image: ImageLoader | None = None,
        max_images: int = 4,
        image_px: int = DEFAULT_MAX_PX,
        max_pixels: int = 50_000_000,
    ) -> None:
        super().__init__(budget)
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key = api_key or NO_KEY
        self.vision = vision_enabled(vision, model)
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.load_image = load_image
        self.max_images = max_images
        self.image_px = image_px
        self.max_pixels = max_pixels
        self._client: openai.OpenAI | None = None
        self._aclient: openai.AsyncOpenAI | None = None

    # ----- prompt ---------------------------------------------------------------------------

    def chat_messages(self, prompt: Prompt) -> list[dict[str, Any]]:
        """The chat messages to send (loads images: blocking)."""
        return build_messages(prompt.messages, prompt.items, self.images(prompt.items))

    def images(self, items: Sequence[ContextItem]) -> dict[int, str]:
        """Data URIs of the top items' images, by item number (empty when vision is off)."""
        if not self.vision or self.load_image is None or self.max_images <= 0:
            return {}
        out: dict[int, str] = {}
        for item in [i for i in items if not i.is_passage][: self.max_images]:  # text: no image
            data = self.load_image(item.hit)
            if data:
                uri = image_data_uri(data, max_px=self.image_px, max_pixels=self.max_pixels)
                if uri is not None:
                    out[item.n] = uri
        return out

    def request(
        self, payload: list[dict[str, Any]], options: GenerationOptions | None, stream: bool
    ) -> dict[str, Any]:
        """Keyword arguments of ``chat.completions.create`` (the client's LLM fields as given).

        A stream asks for usage (``stream_options.include_usage``), as OpenAI-compatible servers
        report it in a last chunk.
        """
        kwargs: dict[str, Any] = {}
        if options is not None:
            kwargs.update(options.llm_fields)
            if options.temperature is not None:
                kwargs["temperature"] = options.temperature
            if options.max_tokens is not None:
                kwargs["max_tokens"] = options.max_tokens
            if options.stop:
                kwargs["stop"] = list(options.stop)
        kwargs.update(model=self.model, messages=payload)
        if stream:
            kwargs["stream"] = True
            kwargs["stream_options"] = {"include_usage": True}
        return kwargs

    # ----- clients --------------------------------------------------------------------------

    def _sdk_options(self) -> dict[str, Any]:
        return {
            "base_url": self.base_url, "api_key": self.api_key,
            "timeout": self.timeout_s, "max_retries": self.max_retries,
        }

    @property
    def client(self) -> openai.OpenAI:
        """The sync SDK client (created on first use)."""
        if self._client is None:
            self._client = openai.OpenAI(**self._sdk_options())
        return self._client

    @property
    def aclient(self) -> openai.AsyncOpenAI:
        """The async SDK client (created on first use, in the serving event loop)."""
        if self._aclient is None:
            self._aclient = openai.AsyncOpenAI(**self._sdk_options())
        return self._aclient

    def close(self) -> None:
        """Close the sync client."""
        if self._client is not None:
            self._client.close()
            self._client = None

    async def aclose(self) -> None:
        """Close both clients."""
        self.close()
        if self._aclient is not None:
            await self._aclient.close()
            self._aclient = None

    # ----- completions ----------------------------------------------------------------------

    def execute(self, prompt: Prompt, stream: bool, response: Response) -> Iterator[str]:
        """One chat completion: its whole text, or its deltas as they stream."""
        request = self.request(self.chat_messages(prompt), prompt.options, stream)
        with self.mapped_errors():
            result: Any = self.client.chat.completions.create(**request)
            if not stream:
                yield self._text(result, response)
                return
            try:
                for chunk in result:
                    yield self._delta(chunk, response)
            finally:
                result.close()

    async def aexecute(
        self, prompt: Prompt, stream: bool, response: Response
    ) -> AsyncGenerator[str, None]:
        """``execute`` on the async client (images load in a worker thread)."""
        payload = await asyncio.to_thread(self.chat_messages, prompt)
        request = self.request(payload, prompt.options, stream)
        with self.mapped_errors():
            result: Any = await self.aclient.chat.completions.create(**request)
            if not stream:
                yield self._text(result, response)
                return
            try:
                async for chunk in result:
                    yield self._delta(chunk, response)
            finally:
                await result.close()

    # ----- parsing and errors ---------------------------------------------------------------

    def _text(self, completion: Any, response: Response) -> str:
        """The text of a ``chat.completion`` object (recording its model and usage)."""
        if not completion.choices:
            raise LLMError(f"LLM endpoint {self.base_url} returned no choices for {self.model!r}")
        response.model = completion.model or self.model
        _record_usage(completion.usage, response)
        choice = completion.choices[0]
        response.finish_reason = choice.finish_reason or "stop"
        calls = choice.message.tool_calls or []
        response.tool_calls = [call.model_dump(exclude_none=True) for call in calls]
        return choice.message.content or ""

    @staticmethod
    def _delta(chunk: Any, response: Response) -> str:
        """The content delta of a ``chat.completion.chunk`` ('' for role-only or usage chunks)."""
        response.model = chunk.model or response.model
        _record_usage(getattr(chunk, "usage", None), response)
        if not chunk.choices:
            return ""
        choice = chunk.choices[0]
        if choice.finish_reason:
            response.finish_reason = choice.finish_reason
        return choice.delta.content or ""

    @contextmanager
    def mapped_errors(self) -> Iterator[None]:
        """Turn SDK exceptions into mmrag's LLM errors with actionable messages."""
        where = f"LLM endpoint {self.base_url}"
        try:
            yield
        except openai.APITimeoutError as exc:
            raise LLMUnavailableError(
                f"{where} timed out (MMRAG_LLM_TIMEOUT_S={self.timeout_s:g}, "
                f"{self.max_retries} retries)"
            ) from exc
        except openai.APIConnectionError as exc:
            raise LLMUnavailableError(
                f"cannot reach {where}: {_root_cause(exc)} (is the server running? "
                "check MMRAG_LLM_BASE_URL)"
            ) from exc
        except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
            raise LLMAuthenticationError(
                f"{where} refused the API key (HTTP {exc.status_code}): {_message(exc)}; "
                "check MMRAG_LLM_API_KEY"
            ) from exc
        except openai.NotFoundError as exc:
            raise LLMModelNotFoundError(
                f"{where} does not know model {self.model!r} (HTTP 404): {_message(exc)}; "
                "check MMRAG_LLM_MODEL, and that MMRAG_LLM_BASE_URL ends in /v1"
            ) from exc
        except openai.APIStatusError as exc:
            raise LLMError(f"{where} answered HTTP {exc.status_code}: {_message(exc)}") from exc
        except openai.APIError as exc:
            raise LLMError(f"{where} failed: {_message(exc)}") from exc


def _record_usage(usage: Any, response: Response) -> None:
    """Keep the token counts an LLM reported (a completion's or a stream's last chunk)."""
    if usage is not None:
        response.usage = {
            "prompt_tokens": int(usage.prompt_tokens or 0),
            "completion_tokens": int(usage.completion_tokens or 0),
            "total_tokens": int(usage.total_tokens or 0),
        }


def _message(exc: openai.APIError) -> str:
    """The server's error message (OpenAI's ``error.message`` when present), one line."""
    body = exc.body
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping) and inner.get("message"):
            return " ".join(str(inner["message"]).split())[:300]
        if isinstance(inner, str):
            return inner[:300]
    return " ".join(str(exc.message).split())[:300]


def _root_cause(exc: BaseException) -> str:
    """The innermost cause of a connection error, one line."""
    inner: BaseException = exc
    while inner.__cause__ is not None:
        inner = inner.__cause__
    return " ".join(str(inner).split())[:300] or type(inner).__name__
