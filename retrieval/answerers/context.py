"""Budgeted, numbered context: which retrieved items an answer may use, and how they are cited.

Budget rules (deterministic): items keep their rank order and are numbered from 1; at most
``max_items`` are kept; each caption is whitespace-collapsed and cut to ``max_caption_chars``;
metadata keeps its keys in order while its JSON fits ``max_metadata_chars`` (long string values
are cut first); items are added while the encoded context stays within ``max_total_chars``
(the first item is always kept, so a question never goes out with no context when there are
hits). Cut text ends with an ellipsis and the item is marked ``truncated``.

A text passage (``modality=text``) is shown as its text with the document and position it comes
from (``notes.md, passage 2 of 5``); its bookkeeping fields (doc id, offsets) are left out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote, urlsplit

from retrieval.text_rows import PASSAGE_FIELDS, citation_label
from retrieval.types import Hit, Modality

ELLIPSIS = "…"
MAX_KEY_CHARS = 64
MAX_SOURCE_CHARS = 200
_CITE = re.compile(r"\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]")
# Characters that could open or close markup in the prompt; JSON-escaped as \u003c etc.
_FENCE_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"}


@dataclass(frozen=True)
class Citation:
    """One retrieved item an answer cites, numbered as in the prompt."""

    n: int
    id: str
    score: float
    caption: str
    image_url: str
    source: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    modality: str = Modality.IMAGE.value
    document: str = ""  # a passage's document and position: "notes.md, passage 2 of 5"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "n": self.n,
            "id": self.id,
            "score": round(float(self.score), 6),
            "caption": self.caption,
            "image_url": self.image_url,
            "source": self.source,
            "metadata": dict(self.metadata),
            "modality": self.modality,
            "document": self.document,
        }


@dataclass(frozen=True)
class ContextBudget:
    """How much retrieved text may go into one prompt."""

    max_items: int = 8
    max_caption_chars: int = 600
    max_metadata_chars: int = 400
    max_total_chars: int = 8000


@dataclass(frozen=True)
class ContextItem:
    """One numbered item as the answerer sees it (caption and metadata already budgeted)."""

    n: int
    hit: Hit
    caption: str
    metadata: Mapping[str, Any] = field(default_factory=dict)
    truncated: bool = False

    @property
    def is_passage(self) -> bool:
        """Whether the item is a passage of a text document (not an image)."""
        return is_passage(self.hit)

    def payload(self) -> dict[str, Any]:
        """The fields shown to the model, in a fixed order."""
        if self.is_passage:
            return {
                "id": self.hit.id,
                "score": round(float(self.hit.score), 4),
                "kind": "text passage",
                "document": citation_label(self.hit.source, self.hit.metadata),
                "text": self.caption,
                "metadata": dict(self.metadata),
                **({"truncated": True} if self.truncated else {}),
            }
        return {
            "id": self.hit.id,
            "score": round(float(self.hit.score), 4),
            "source": source_name(self.hit.source),
            "caption": self.caption,
            "metadata": dict(self.metadata),
            **({"truncated": True} if self.truncated else {}),
        }

    def encoded(self) -> str:
        """The payload as fence-safe JSON (see ``fence_safe_json``)."""
        return fence_safe_json(self.payload())


def is_passage(hit: Hit) -> bool:
    """Whether a hit is a passage of a text document."""
    return Modality(hit.modality) is Modality.TEXT


def fence_safe_json(value: Any) -> str:
    """JSON in which ``<``, ``>`` and ``&`` are escaped, so it can never close a markup fence."""
    text = json.dumps(value, ensure_ascii=False, default=str, sort_keys=False)
    for char, escape in _FENCE_ESCAPES.items():
        text = text.replace(char, escape)
    return text


def source_name(source: str) -> str:
    """The file name of a source path or URL (no directories), bounded."""
    path = urlsplit(source).path if source.startswith(("http://", "https://")) else source
    name = PurePosixPath(path.replace("\\", "/")).name or source
    return shorten(name, MAX_SOURCE_CHARS)


def shorten(text: str, limit: int) -> str:
    """Text cut to at most ``limit`` characters, ending with an ellipsis when cut."""
    return text if len(text) <= limit else text[: max(0, limit - 1)] + ELLIPSIS


def budget_metadata(metadata: Mapping[str, Any], limit: int) -> tuple[dict[str, Any], bool]:
    """Metadata whose JSON fits ``limit`` characters, and whether anything was dropped or cut."""
    out: dict[str, Any] = {}
    cut = False
    for key, value in metadata.items():
        name = shorten(str(key), MAX_KEY_CHARS)
        short: Any
        if isinstance(value, str):
            short = shorten(value, limit // 2)
        elif value is None or isinstance(value, bool | int | float):
            short = value
        else:
            encoded = json.dumps(value, ensure_ascii=False, default=str)
            short = value if len(encoded) <= limit // 2 else shorten(encoded, limit // 2)
        cut = cut or short != value or name != key
        candidate = {**out, name: short}
        if len(json.dumps(candidate, ensure_ascii=False, default=str)) > limit:
            return out, True
        out = candidate
    return out, cut


def build_context(hits: Sequence[Hit], budget: ContextBudget | None = None) -> list[ContextItem]:
    """The numbered items that fit the budget, best first (see the module docstring)."""
    rules = budget or ContextBudget()
    items: list[ContextItem] = []
    total = 0
    for hit in hits[: rules.max_items]:
        caption = " ".join(hit.caption.split())
        short = shorten(caption, rules.max_caption_chars)
        shown = hit.metadata
        if is_passage(hit):  # where the passage is from goes in its own field
            shown = {k: v for k, v in hit.metadata.items() if k not in PASSAGE_FIELDS}
        metadata, meta_cut = budget_metadata(shown, rules.max_metadata_chars)
        item = ContextItem(
            n=len(items) + 1,
            hit=hit,
            caption=short,
            metadata=metadata,
            truncated=meta_cut or short != caption,
        )
        size = len(item.encoded())
        if items and total + size > rules.max_total_chars:
            break
        items.append(item)
        total += size
    return items


def item_image_url(item_id: str) -> str:
    """The API path that serves an item's image."""
    return f"/items/{quote(item_id, safe='')}/image"


def citation_for(item: ContextItem) -> Citation:
    """The citation of one context item (full caption and metadata, for display)."""
    hit = item.hit
    return Citation(
        n=item.n,
        id=hit.id,
        score=float(hit.score),
        caption=hit.caption,
        image_url=item_image_url(hit.id),
        source=hit.source,
        metadata=dict(hit.metadata),
        modality=Modality(hit.modality).value,
        document=citation_label(hit.source, hit.metadata) if is_passage(hit) else "",
    )


def cited_numbers(text: str, count: int) -> list[int]:
    """Item numbers 1..count cited as ``[n]`` or ``[n, m]`` in text, ascending, no repeats."""
    found: set[int] = set()
    for match in _CITE.finditer(text):
        for part in match.group(1).split(","):
            n = int(part)
            if 1 <= n <= count:
                found.add(n)
    return sorted(found)


def citations_for(text: str, items: Sequence[ContextItem]) -> tuple[Citation, ...]:
    """Citations of the items the text cites; all context items when it cites none."""
    numbers = cited_numbers(text, len(items)) or [item.n for item in items]
    by_number = {item.n: item for item in items}
    return tuple(citation_for(by_number[n]) for n in numbers)
