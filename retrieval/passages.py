"""Split a document into passages that fit a text tower's context, with a small overlap.

A document is cut only between words. Cuts prefer the end of a sentence or a line (paragraphs
are lines too), packing as many whole sentences as fit; a sentence longer than the budget is cut
between words, and a "word" longer than the budget (a URL, a hash) between characters. Each
passage after the first starts with the last few words of the one before (``overlap`` tokens at
most), so a phrase cut at a boundary is still whole in one of them. Passages carry their place in
the document: index, and start/end character offsets of the exact slice they were made from.

Token counts come from the model's own tokenizer (``count``: tokens of a text without the start
and end markers); a packed passage is counted again as a whole and shrunk while it is over.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_OVERLAP_TOKENS = 8
_WORD = re.compile(r"\S+")
_SENTENCE_END = re.compile(r"[.!?;:]['\")\]]*\Z")

TokenCount = Callable[[str], int]


@dataclass(frozen=True)
class Passage:
    """One passage: its index in the document, its text, and the slice it came from."""

    index: int
    text: str
    start: int
    end: int


@dataclass(frozen=True)
class _Word:
    start: int
    end: int
    tokens: int
    bytes: int
    boundary: bool  # a cut right after this word ends a sentence or a line


def split_passages(
    text: str,
    count: TokenCount,
    budget: int,
    *,
    overlap: int = DEFAULT_OVERLAP_TOKENS,
    max_bytes: int | None = None,
) -> list[Passage]:
    """The passages of ``text``: each at most ``budget`` tokens (and ``max_bytes`` of UTF-8).

    ``overlap`` is capped at a quarter of the budget. Whitespace runs inside a passage's text
    are folded to one space (its offsets still name the exact slice of the document).
    """
    if budget < 1:
        raise ValueError(f"budget must be at least 1 token, got {budget}")
    overlap = max(0, min(overlap, budget // 4))
    byte_cap = max_bytes if max_bytes is not None else 1 << 62
    words = _words(text, count, budget, byte_cap)
    passages: list[Passage] = []
    start = done = 0  # ``done``: words already in a passage
    while done < len(words):
        end, clean = _fit(words, start, done, budget, byte_cap)
        if start < done and (not clean or end <= done):  # the overlap crowds out a sentence
            fresh_end, fresh_clean = _fit(words, done, done, budget, byte_cap)
            if fresh_clean or end <= done:
                start, end = done, fresh_end
        end = _shrink(text, words, start, max(end, done + 1), count, budget)
        passages.append(_passage(text, words, len(passages), start, end))
        done = end
        start = _overlap_start(words, start, end, overlap)
    return passages


def _words(text: str, count: TokenCount, budget: int, byte_cap: int) -> list[_Word]:
    """The document's words with their token counts; words over the budget are cut up."""
    words: list[_Word] = []
    for match in _WORD.finditer(text):
        start, end = match.span()
        after = text[end : end + 2]
        boundary = bool(_SENTENCE_END.search(match.group())) or after.startswith(("\n", "\r"))
        for piece_start, piece_end in _pieces(text, start, end, count, budget, byte_cap):
            piece = text[piece_start:piece_end]
            words.append(
                _Word(piece_start, piece_end, max(1, count(piece)), len(piece.encode()) + 1,
                      boundary and piece_end == end)
            )
    return words


def _pieces(
    text: str, start: int, end: int, count: TokenCount, budget: int, byte_cap: int
) -> list[tuple[int, int]]:
    """A word as one piece, or cut between characters into pieces that fit."""
    word = text[start:end]
    if count(word) <= budget and len(word.encode()) < byte_cap:
        return [(start, end)]
    pieces = []
    at = start
    while at < end:
        low, high = at + 1, end  # the longest piece from ``at`` that fits (at least 1 char)
        while low < high:
            middle = (low + high + 1) // 2
            piece = text[at:middle]
            if count(piece) <= budget and len(piece.encode()) < byte_cap:
                low = middle
            else:
                high = middle - 1
        pieces.append((at, low))
        at = low
    return pieces


def _fit(
    words: list[_Word], start: int, done: int, budget: int, byte_cap: int
) -> tuple[int, bool]:
    """(end, clean): the passage from ``start`` ends after the last sentence or line that fits
    and goes past ``done`` (clean), or after as many words as fit when none does."""
    tokens = size = 0
    best_boundary = -1
    end = start
    while end < len(words):
        word = words[end]
        if end > start and (tokens + word.tokens > budget or size + word.bytes > byte_cap):
            break
        tokens += word.tokens
        size += word.bytes
        end += 1
        if word.boundary and end > done:
            best_boundary = end
    if end == len(words):
        return end, True
    if best_boundary > done:
        return best_boundary, True
    return end, False


def _shrink(
    text: str, words: list[_Word], start: int, end: int, count: TokenCount, budget: int
) -> int:
    """Drop trailing words while the passage, counted as a whole, is over the budget."""
    while end - start > 1 and count(_folded(text, words, start, end)) > budget:
        end -= 1
    return end


def _overlap_start(words: list[_Word], start: int, end: int, overlap: int) -> int:
    """Where the next passage starts: a few words before ``end`` (never at or before ``start``)."""
    tokens = 0
    at = end
    while at - 1 > start and tokens + words[at - 1].tokens <= overlap:
        at -= 1
        tokens += words[at].tokens
    return at


def _folded(text: str, words: list[_Word], start: int, end: int) -> str:
    """The words ``start..end`` joined by single spaces (pieces of one word stay joined)."""
    parts: list[str] = []
    previous_end = -1
    for word in words[start:end]:
        if parts and word.start != previous_end:
            parts.append(" ")
        parts.append(text[word.start : word.end])
        previous_end = word.end
    return "".join(parts)


def _passage(text: str, words: list[_Word], index: int, start: int, end: int) -> Passage:
    return Passage(
        index=index,
        text=_folded(text, words, start, end),
        start=words[start].start,
        end=words[end - 1].end,
    )
