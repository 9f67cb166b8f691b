"""The offline answerer: no generation, a deterministic summary of the best-matching items."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from retrieval.answerers.base import (
    Answerer,
    GenerationOptions,
    Prompt,
    Response,
    UnsupportedParameterError,
    latest_user_text,
)
from retrieval.answerers.context import ContextItem, shorten, source_name
from retrieval.answerers.usage import CHARS_PER_TOKEN
from retrieval.text_rows import citation_label

EXTRACTIVE_MODEL = "mmrag-extractive"
NOTICE = "Extractive answer: no language model wrote this; it lists the retrieved items."
MAX_QUESTION_CHARS = 200
MAX_METADATA_FIELDS = 6
_PIECES = re.compile(r"\s*\S+")
# Request fields that ask for another kind of answer (JSON to a schema, tool calls) than a list
# of items: this backend refuses them rather than answer something else.
_SHAPING_FIELDS = ("response_format", "tools", "tool_choice", "functions", "function_call")
_LLM_HINT = "set MMRAG_LLM=openai (with MMRAG_LLM_BASE_URL and MMRAG_LLM_MODEL) to use it"


class ExtractiveAnswerer(Answerer):
    """Answers with the retrieved items themselves: rank, caption, score, source and metadata.

    It keeps ``max_tokens`` (estimated at four characters a token; finish reason "length") and
    ``stop``; it refuses what asks for another kind of answer (``response_format`` other than
    text, ``tools``, ``tool_choice``, ``functions``), naming the parameter.
    """

    name = "extractive"
    model = EXTRACTIVE_MODEL
    extractive = True

    def unsupported(self, options: GenerationOptions | None) -> UnsupportedParameterError | None:
        """The first answer-shaping field this backend cannot keep (None: all fine)."""
        fields = dict(options.llm_fields) if options is not None else {}
        for name in _SHAPING_FIELDS:
            value = fields.get(name)
            if value is None or _harmless(name, value, fields):
                continue
            return UnsupportedParameterError(
                name,
                f"The extractive answerer (MMRAG_LLM=extractive) lists the retrieved items and "
                f"cannot honour '{name}'; {_LLM_HINT}, or leave '{name}' out.",
            )
        return None

    def execute(self, prompt: Prompt, stream: bool, response: Response) -> list[str]:
        """The item list as text (word by word when streaming); it cites every listed item."""
        text = render(latest_user_text(prompt.messages), prompt.items)
        text, response.finish_reason = clip(text, prompt.options)
        return _PIECES.findall(text) if stream else [text]


def _harmless(name: str, value: Any, fields: Mapping[str, Any]) -> bool:
    """Whether a shaping field asks for nothing beyond plain text."""
    if name == "response_format":
        return isinstance(value, Mapping) and value.get("type") == "text"
    if name in ("tool_choice", "function_call"):
        return value == "none"
    if name in ("tools", "functions"):
        return not value or fields.get("tool_choice") == "none" or fields.get(
            "function_call") == "none"
    return False


def clip(text: str, options: GenerationOptions | None) -> tuple[str, str]:
    """The text cut before the first stop string and to ``max_tokens``; its finish reason."""
    if options is None:
        return text, "stop"
    for stop in options.stop:
        at = text.find(stop) if stop else -1
        if at >= 0:
            text = text[:at]
    if options.max_tokens is not None and len(text) > options.max_tokens * CHARS_PER_TOKEN:
        return text[: options.max_tokens * CHARS_PER_TOKEN], "length"
    return text, "stop"


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
    """One item as ``[n] "caption" (score 0.1234; file.jpg; key=value, ...)``; a passage names
    its document and position instead of the file (``notes.md, passage 2 of 5``)."""
    caption = f'"{item.caption}"' if item.caption else "(no caption)"
    details = [f"score {item.hit.score:.4f}"]
    name = (citation_label(item.hit.source, item.hit.metadata) if item.is_passage
            else source_name(item.hit.source))
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
