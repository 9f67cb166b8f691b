"""The offline answerer: no generation, a deterministic summary of the best-matching items."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from retrieval.answerers.base import Answerer, Prompt, Response, latest_user_text
from retrieval.answerers.context import ContextItem, shorten, source_name

EXTRACTIVE_MODEL = "mmrag-extractive"
NOTICE = "Extractive answer: no language model wrote this; it lists the retrieved items."
MAX_QUESTION_CHARS = 200
MAX_METADATA_FIELDS = 6
_PIECES = re.compile(r"\s*\S+")


class ExtractiveAnswerer(Answerer):
    """Answers with the retrieved items themselves: rank, caption, score, source and metadata."""

    name = "extractive"
    model = EXTRACTIVE_MODEL
    extractive = True

    def execute(self, prompt: Prompt, stream: bool, response: Response) -> list[str]:
        """The item list as text (word by word when streaming); it cites every listed item."""
        text = render(latest_user_text(prompt.messages), prompt.items)
        return _PIECES.findall(text) if stream else [text]


def render(question: str, items: Sequence[ContextItem]) -> str:
    """The extractive answer text (deterministic for the same question and items)."""
    asked = shorten(" ".join(question.split()), MAX_QUESTION_CHARS)
    if not items:
        return f'No item in the collection matched "{asked}". {NOTICE}'
    lines = [f'The best match for "{asked}" is [1]. Retrieved items, best first:']
    lines += [_line(item) for item in items]
    lines.append(NOTICE)
    return "\n".join(lines)


def _line(item: ContextItem) -> str:
    """One item as ``[n] "caption" (score 0.1234; file.jpg; key=value, ...)``."""
    caption = f'"{item.caption}"' if item.caption else "(no caption)"
    details = [f"score {item.hit.score:.4f}"]
    name = source_name(item.hit.source)
    if name:
        details.append(name)
    meta = _metadata_text(item.metadata)
    if meta:
        details.append(meta)
    return f"[{item.n}] {caption} ({'; '.join(details)})"


def _metadata_text(metadata: Mapping[str, Any]) -> str:
    """``key=value`` pairs of the first few metadata fields."""
    pairs = [f"{key}={value}" for key, value in list(metadata.items())[:MAX_METADATA_FIELDS]]
    return ", ".join(" ".join(pair.split()) for pair in pairs)
