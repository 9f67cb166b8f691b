"""Composed queries: weighted text and image terms, summed as unit vectors (rclip-style).

A composition is a list of ``Term``s (text, a stored item's id, or an image file or upload,
each with a weight that may be negative). ``combine`` checks it and returns the weighted sum of
the terms' unit vectors, renormalised; ``parse_composition`` reads the CLI syntax::

    "beach" + "sunset" - "people"      2*"beach" - 0.5*@ID      img:photo.jpg + "at night"

The combined vector is searched like any query vector (``retrieval.search``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum

import numpy as np

from retrieval.embedders.base import Embedder
from retrieval.errors import ConfigError
from retrieval.stores.base import VectorStore

MAX_TERMS = 16
MAX_WEIGHT = 100.0
# The combination is refused when its length is below this fraction of the sum of |weights|:
# the terms cancel out, and the direction left is rounding noise.
MIN_RELATIVE_NORM = 1e-3
WEIGHT_SUM_EPSILON = 1e-9


class CompositionError(ConfigError):
    """A composed query that cannot be turned into one query vector."""


class TermKind(str, Enum):
    """What a term names."""

    TEXT = "text"
    ITEM = "image_id"  # a stored item: its stored vector
    IMAGE = "image"  # an image file (CLI) or an uploaded part (API)


@dataclass(frozen=True)
class Term:
    """One weighted term of a composition."""

    kind: TermKind
    value: str  # the text, the item id, or the image's path / upload part name
    weight: float = 1.0

    def describe(self) -> str:
        """The term as the CLI writes it, for messages."""
        shown = {TermKind.TEXT: f'"{self.value}"', TermKind.ITEM: f"@{self.value}"}
        return f"{self.weight:g}*{shown.get(self.kind, f'img:{self.value}')}"


def check_terms(terms: Sequence[Term]) -> None:
    """Refuse compositions that cannot make a direction (CompositionError saying what to fix)."""
    if not terms:
        raise CompositionError(
            "the composition has no terms; give at least one text, image id or image"
        )
    if len(terms) > MAX_TERMS:
        raise CompositionError(f"the composition has {len(terms)} terms; at most {MAX_TERMS}")
    for term in terms:
        if not math.isfinite(term.weight) or term.weight == 0.0:
            raise CompositionError(
                f"term {term.describe()} has weight {term.weight}; use a finite, non-zero weight"
            )
        if abs(term.weight) > MAX_WEIGHT:
            raise CompositionError(
                f"term {term.describe()} has weight {term.weight:g}; weights must be within "
                f"-{MAX_WEIGHT:g}..{MAX_WEIGHT:g}"
            )
        if not term.value.strip():
            raise CompositionError(f"a {term.kind.value} term is empty; give it a value")
    if all(term.weight < 0 for term in terms):
        raise CompositionError(
            "every term of the composition is negative; add at least one positive term "
            "(what to look for) before subtracting"
        )
    if abs(sum(term.weight for term in terms)) < WEIGHT_SUM_EPSILON:
        raise CompositionError(
            "the weights of the composition sum to zero; the result would only be the "
            "difference of the terms; give the positive terms more weight (e.g. 2*\"beach\")"
        )


def single_text(terms: Sequence[Term]) -> str | None:
    """The text of a composition that is one positive text term (``"R-4821"``): its direction
    is that text's, so it is searched as that plain text query, in any search mode."""
    if len(terms) == 1 and terms[0].kind is TermKind.TEXT and terms[0].weight > 0:
        return terms[0].value
    return None


def combine(terms: Sequence[Term], vectors: Sequence[np.ndarray]) -> np.ndarray:
    """The weighted sum of the terms' unit vectors, renormalised (float32, unit length)."""
    check_terms(terms)
    if len(vectors) != len(terms):
        raise ValueError(f"{len(terms)} terms but {len(vectors)} vectors")
    total: np.ndarray | None = None
    for term, vector in zip(terms, vectors, strict=True):
        row = np.asarray(vector, dtype=np.float64).reshape(-1)
        norm = float(np.linalg.norm(row))
        if not math.isfinite(norm) or norm == 0.0:
            raise CompositionError(f"term {term.describe()} has no direction (a zero vector)")
        if total is not None and total.shape != row.shape:
            raise CompositionError(
                f"term {term.describe()} has {row.shape[0]} dimensions, the others "
                f"{total.shape[0]}; every term must come from the collection's model"
            )
        part = term.weight * row / norm
        total = part if total is None else total + part
    assert total is not None  # check_terms refused an empty composition
    length = float(np.linalg.norm(total))
    if length < MIN_RELATIVE_NORM * sum(abs(term.weight) for term in terms):
        raise CompositionError(
            "the terms cancel each other out (their weighted sum is almost zero); "
            "drop or reweight the opposing terms"
        )
    return (total / length).astype(np.float32)


def embed_terms(
    terms: Sequence[Term],
    *,
    texts: Callable[[list[str]], np.ndarray],
    items: Callable[[list[str]], dict[str, np.ndarray]],
    images: Callable[[list[str]], np.ndarray],
) -> list[np.ndarray]:
    """Each term's vector, by kind in one call each (texts, stored items, image files).

    ``items`` maps the ids it found to their stored vectors; a missing id is a
    CompositionError naming it.
    """
    by_kind: dict[TermKind, list[str]] = {kind: [] for kind in TermKind}
    for term in terms:
        by_kind[term.kind].append(term.value)
    found: dict[tuple[TermKind, str], np.ndarray] = {}
    if by_kind[TermKind.TEXT]:
        found.update(zip(((TermKind.TEXT, t) for t in by_kind[TermKind.TEXT]),
                         texts(by_kind[TermKind.TEXT]), strict=True))
    if by_kind[TermKind.IMAGE]:
        found.update(zip(((TermKind.IMAGE, p) for p in by_kind[TermKind.IMAGE]),
                         images(by_kind[TermKind.IMAGE]), strict=True))
    if by_kind[TermKind.ITEM]:
        stored = items(by_kind[TermKind.ITEM])
        missing = [i for i in by_kind[TermKind.ITEM] if i not in stored]
        if missing:
            raise CompositionError(
                f"no stored item {missing[0]!r} in this collection; use an id that "
                "`mmrag search` or GET /items shows"
            )
        found.update(((TermKind.ITEM, i), v) for i, v in stored.items())
    return [found[(term.kind, term.value)] for term in terms]


def compose_vector(
    terms: Sequence[Term],
    embedder: Embedder,
    store: VectorStore,
    load_image: Callable[[str], np.ndarray],
) -> np.ndarray:
    """The unit query vector of a composition (blocking: the CLI's path); checked first, so a
    composition that cannot work fails before the model runs."""
    check_terms(terms)

    def stored(ids: list[str]) -> dict[str, np.ndarray]:
        return {r.id: np.asarray(r.vector) for r in store.get(ids, with_vectors=True)}

    vectors = embed_terms(
        terms,
        texts=embedder.embed_texts,
        items=stored,
        images=lambda paths: embedder.embed_images([load_image(p) for p in paths]),
    )
    return combine(terms, vectors)


# ----- the CLI syntax ------------------------------------------------------------------------

_NUMBER = r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+"
_STARTS_COMPOSED = re.compile(rf'\s*(?:[+-]\s*)?(?:(?:{_NUMBER})\s*\*\s*)?(?:"|@|img:)')
_SIGN = re.compile(r"\s*([+-])")
_WEIGHT = re.compile(rf"\s*({_NUMBER})\s*\*")
_ITEM = re.compile(r"@([A-Za-z0-9._:-]+)")
_BARE_PATH = re.compile(r'[^\s"]+')
SYNTAX_HINT = 'write terms like \'"beach" + 2*"sunset" - "people"\', \'@ID\' or \'img:photo.jpg\''


def is_composed(text: str) -> bool:
    """Whether a query uses the composition syntax (a plain query stays a plain text query)."""
    return _STARTS_COMPOSED.match(text) is not None


def parse_composition(text: str) -> list[Term]:
    """The terms of a composed query (CompositionError naming the position of a mistake)."""
    terms: list[Term] = []
    pos = 0
    end = len(text)
    while True:
        while pos < end and text[pos].isspace():
            pos += 1
        if pos == end:
            break
        sign = 1.0
        match = _SIGN.match(text, pos)
        if match:
            sign = -1.0 if match.group(1) == "-" else 1.0
            pos = match.end()
        elif terms:
            raise _syntax(text, pos, "expected + or - between terms")
        weight = 1.0
        match = _WEIGHT.match(text, pos)
        if match:
            weight = float(match.group(1))
            pos = match.end()
        while pos < end and text[pos].isspace():
            pos += 1
        term, pos = _atom(text, pos)
        terms.append(Term(term[0], term[1], sign * weight))
    if not terms:
        raise CompositionError(f"the composition has no terms; {SYNTAX_HINT}")
    return terms


def _atom(text: str, pos: int) -> tuple[tuple[TermKind, str], int]:
    """One quoted text, @id or img:path at ``pos``, and the position after it."""
    if text.startswith('"', pos):
        value, after = _quoted(text, pos)
        return (TermKind.TEXT, value), after
    if text.startswith("@", pos):
        match = _ITEM.match(text, pos)
        if not match:
            raise _syntax(text, pos, "an item id follows @ (letters, digits, . _ : -)")
        return (TermKind.ITEM, match.group(1)), match.end()
    if text.startswith("img:", pos):
        start = pos + len("img:")
        if text.startswith('"', start):
            value, after = _quoted(text, start)
            return (TermKind.IMAGE, value), after
        match = _BARE_PATH.match(text, start)
        if not match:
            raise _syntax(text, start, "a file path follows img: (quote it if it has spaces)")
        return (TermKind.IMAGE, match.group(0)), match.end()
    raise _syntax(text, pos, 'expected a "quoted text", @ID or img:PATH')


def _quoted(text: str, pos: int) -> tuple[str, int]:
    """The string in double quotes at ``pos`` (\\" and \\\\ escape) and the position after it."""
    chars: list[str] = []
    i = pos + 1
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in '"\\':
            chars.append(text[i + 1])
            i += 2
            continue
        if ch == '"':
            return "".join(chars), i + 1
        chars.append(ch)
        i += 1
    raise _syntax(text, pos, "this quote is never closed")


def _syntax(text: str, pos: int, what: str) -> CompositionError:
    """A syntax error pointing at a character of the query."""
    return CompositionError(
        f"cannot read the composed query at character {pos + 1} ({text[pos:pos + 12]!r}): "
        f"{what}; {SYNTAX_HINT}"
    )
