"""create_answerer(settings): the configured backend (``MMRAG_LLM=extractive|openai``)."""

from __future__ import annotations

from retrieval.answerers.base import Answerer
from retrieval.answerers.context import ContextBudget
from retrieval.answerers.extractive import ExtractiveAnswerer
from retrieval.answerers.images import ImageLoader, read_local_image
from retrieval.answerers.openai_compat import OpenAICompatibleAnswerer
from retrieval.config import Settings
from retrieval.errors import ConfigError

BACKENDS = ("extractive", "openai")


def budget_from_settings(settings: Settings) -> ContextBudget:
    """The context budget the settings ask for."""
    return ContextBudget(
        max_items=settings.llm_context_items,
        max_caption_chars=settings.llm_caption_chars,
        max_metadata_chars=settings.llm_metadata_chars,
        max_total_chars=settings.llm_context_chars,
    )


def create_answerer(
    settings: Settings, *, backend: str | None = None, load_image: ImageLoader | None = None
) -> Answerer:
    """The answerer named by ``backend`` (default ``settings.llm``).

    ``load_image(hit) -> bytes | None`` feeds vision models; it defaults to reading the hit's
    source when it is a local file (URLs are never fetched here).
    """
    name = backend or settings.llm
    budget = budget_from_settings(settings)
    if name == "extractive":
        return ExtractiveAnswerer(budget)
    if name == "openai":
        return OpenAICompatibleAnswerer(
            base_url=settings.llm_base_url,
            model=settings.llm_model,
            api_key=settings.llm_api_key,
            vision=settings.llm_vision,
            timeout_s=settings.llm_timeout_s,
            max_retries=settings.llm_max_retries,
            budget=budget,
            load_image=load_image or read_local_image,
            max_images=settings.llm_max_images,
            image_px=settings.llm_image_px,
            max_pixels=settings.max_image_pixels,
        )
    raise ConfigError(f"unknown answerer {name!r}; use one of {', '.join(BACKENDS)}")
