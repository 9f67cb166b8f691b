"""Document to stored passage rows: decoding, ids, the text budget and the row of one passage.

A text document (a ``.txt``/``.md`` file, or a manifest row's ``text`` cell) is decoded, split
into passages that fit the model's text context (``retrieval.passages``) and embedded by the
model's text tower; each passage is one row with ``modality=text``, its text in ``caption``.

Ids: a document's ``doc_id`` is the BLAKE2b hash of its UTF-8 text; a passage's id hashes the
document's key (its path, or its manifest id), the ``doc_id`` and the passage's index. So a
rerun over an unchanged document finds every passage stored, an edited document gets new ids
(its old passages, found by key with another ``doc_id``, are removed: ``stale_passages_expr``),
and the same text in two files is two documents, each pointing to its own file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from retrieval.embedders.base import Embedder
from retrieval.embedders.tagged import EmbeddingModel
from retrieval.ids import content_id
from retrieval.passages import Passage, TokenCount, split_passages
from retrieval.source_names import storable
from retrieval.stores.expr import field_ref, quote_string
from retrieval.stores.milvus_rows import MAX_CAPTION_BYTES
from retrieval.types import Modality, Record

TEXT_EXTENSIONS = frozenset({".txt", ".md", ".markdown"})
DEFAULT_CONTEXT = 77  # open_clip's context when a model names none
MARKERS = 2  # start- and end-of-text tokens
PASSAGE_FIELDS = ("document", "doc_id", "passage", "passages", "char_start", "char_end")


@dataclass(frozen=True)
class TextBudget:
    """How much text one row holds: tokens of the model's context (markers excluded)."""

    tokens: int
    count: TokenCount

    def split(self, text: str) -> list[Passage]:
        """The passages of a document under this budget and the store's caption cap."""
        return split_passages(text, self.count, self.tokens, max_bytes=MAX_CAPTION_BYTES)


def text_budget(embedder: Embedder) -> TextBudget:
    """The budget of the embedder's text tower, from its open_clip tokenizer.

    An embedder without a tokenizer (none ships) gets open_clip's default context, counting
    one token per word and punctuation run.
    """
    tokenizer = getattr(embedder, "tokenizer", None)
    context = getattr(tokenizer, "context_length", None) or DEFAULT_CONTEXT
    tokens = max(1, int(context) - MARKERS)
    encode = getattr(tokenizer, "encode", None)
    if callable(encode):
        return TextBudget(tokens, lambda text: len(encode(text)))
    inner = getattr(tokenizer, "tokenizer", None)  # open_clip's HFTokenizer wraps one
    if inner is not None and callable(getattr(inner, "encode", None)):
        return TextBudget(tokens, lambda text: len(inner.encode(text, add_special_tokens=False)))
    return TextBudget(tokens, _rough_count)


def _rough_count(text: str) -> int:
    """Words and punctuation runs: about what a BPE tokenizer makes of English, at least."""
    return len(re.findall(r"\w+|[^\w\s]+", text))


def decode_text(data: bytes) -> tuple[str, str]:
    """(text, note): UTF-8 (a byte-order mark dropped), else decoded with U+FFFD replacements
    and a note saying so."""
    try:
        return data.decode("utf-8-sig"), ""
    except UnicodeDecodeError as exc:
        text = data.decode("utf-8", errors="replace")
        replaced = text.count("\ufffd")
        return text, (
            f"not valid UTF-8 (first bad byte at offset {exc.start}); {replaced} undecodable "
            "byte sequence(s) were replaced with U+FFFD: save the file as UTF-8 to keep them"
        )


def document_id(text: str) -> str:
    """The content hash of a document's text."""
    return content_id(text.encode("utf-8", "surrogatepass"))


def passage_id(key: str, doc_id: str, index: int) -> str:
    """The stable id of passage ``index`` of the document ``key`` with content ``doc_id``."""
    return content_id(f"{key}\0{doc_id}\0{index}".encode("utf-8", "surrogatepass"))


def passage_metadata(
    key: str, doc_id: str, passage: Passage, total: int, extra: Mapping[str, Any]
) -> dict[str, Any]:
    """The metadata of a passage row: the item's own fields, then where the passage is from."""
    return {
        **extra,
        "document": key,
        "doc_id": doc_id,
        "passage": passage.index,
        "passages": total,
        "char_start": passage.start,
        "char_end": passage.end,
    }


def passage_record(
    row_id: str,
    vector: np.ndarray,
    model: EmbeddingModel,
    *,
    source: str,
    text: str,
    metadata: Mapping[str, Any],
) -> Record:
    """The stored row of one passage (its text is the caption)."""
    source_text, fields = storable(source, metadata)
    return Record(
        id=row_id,
        vector=np.asarray(vector, dtype=np.float32),
        source=source_text,
        caption=text,
        modality=Modality.TEXT,
        metadata=fields,
        model_id=model.model_id,
    )


def stale_passages_expr(key: str, doc_id: str) -> str | None:
    """The filter for a document's passages of other content (None: a key no filter can name,
    such as a path with control characters)."""
    try:
        document = quote_string(key)
    except ValueError:
        return None
    return (
        f'modality == "text" and {field_ref("metadata", "document")} == {document} '
        f'and {field_ref("metadata", "doc_id")} != {quote_string(doc_id)}'
    )


def citation_label(source: str, metadata: Mapping[str, Any]) -> str:
    """How an answer names a passage: ``notes.md, passage 2 of 5`` (the source's file name,
    or the manifest row's, e.g. ``catalogue.csv#row=3``)."""
    name = source.replace("\\", "/").rsplit("/", 1)[-1] or source
    index = metadata.get("passage")
    if not isinstance(index, int) or isinstance(index, bool):
        return name
    total = metadata.get("passages")
    of = f" of {total}" if isinstance(total, int) and not isinstance(total, bool) else ""
    return f"{name}, passage {index + 1}{of}"
