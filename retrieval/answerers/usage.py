"""Token usage when the backend reports none: an estimate of about four characters a token.

The extractive answerer calls no model, and some LLM servers leave ``usage`` out of streams;
their answers carry ``estimated_usage``: the conversation and the numbered items (what a model
would read) as prompt tokens, the answer text as completion tokens, ``ceil(chars / 4)`` each.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from retrieval.answerers.context import ContextItem

if TYPE_CHECKING:
    from retrieval.answerers.base import ChatMessage

CHARS_PER_TOKEN = 4


def estimate_tokens(text: str) -> int:
    """About how many tokens ``text`` is (``ceil(len / CHARS_PER_TOKEN)``)."""
    return -(-len(text) // CHARS_PER_TOKEN)


def estimated_usage(
    messages: Sequence[ChatMessage], items: Sequence[ContextItem], answer: str
) -> dict[str, int]:
    """OpenAI-shaped usage estimated from the conversation, the items and the answer."""
    prompt = sum(estimate_tokens(m.content) for m in messages)
    prompt += sum(estimate_tokens(item.encoded()) for item in items)
    completion = estimate_tokens(answer)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
