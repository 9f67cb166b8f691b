"""Answerers: retrieved items + conversation -> a grounded answer with citations."""

from retrieval.answerers.base import (
    Answer,
    Answerer,
    AnswerEvent,
    ChatMessage,
    Citation,
    FinalEvent,
    GenerationOptions,
    TokenEvent,
)
from retrieval.answerers.context import ContextBudget, ContextItem, build_context
from retrieval.answerers.extractive import ExtractiveAnswerer
from retrieval.answerers.openai_compat import OpenAICompatibleAnswerer, is_vision_model
from retrieval.answerers.registry import BACKENDS, budget_from_settings, create_answerer

__all__ = [
    "BACKENDS",
    "Answer",
    "AnswerEvent",
    "Answerer",
    "ChatMessage",
    "Citation",
    "ContextBudget",
    "ContextItem",
    "ExtractiveAnswerer",
    "FinalEvent",
    "GenerationOptions",
    "OpenAICompatibleAnswerer",
    "TokenEvent",
    "budget_from_settings",
    "build_context",
    "create_answerer",
    "is_vision_model",
]
