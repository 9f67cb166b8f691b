"""The search options the API and the CLI share: one definition of each limit and its message.

The API's request models and ``mmrag search``'s flags declare these fields with the same
factories, so a value is refused by the same rule with the same message (pydantic's) on both.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from retrieval.errors import ConfigError
from retrieval.limits import MAX_TOPK
from retrieval.stores.base import Fusion

Mode = Literal["vector", "keyword", "hybrid"]
Ranker = Literal["rrf", "weighted"]
MODE_DESCRIPTION = (
    "vector: CLIP similarity; keyword: BM25 over captions, file names and indexed text "
    "columns; hybrid: both, fused by Milvus (default where the collection has the text "
    "index, else vector). Image queries are searched by vector."
)


def offset_field() -> Any:
    """Hits to skip: 0 .. MAX_TOPK - 1 (and k + offset <= MAX_TOPK, see ``check_page``)."""
    return Field(0, ge=0, le=MAX_TOPK - 1, description=f"hits to skip; k + offset <= {MAX_TOPK}")


def min_score_field() -> Any:
    """A cosine-similarity floor within [-1, 1]."""
    return Field(
        None, ge=-1.0, le=1.0, description="drop hits scoring below this (cosine similarity)"
    )


def diversity_field() -> Any:
    """The MMR weight within [0, 1]."""
    return Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="maximal marginal relevance over the top candidates: 0 = plain ranking, "
        "1 = only spread results apart",
    )


def mode_field() -> Any:
    """vector | keyword | hybrid, or None for the collection's default."""
    return Field(None, description=MODE_DESCRIPTION)


def ranker_field() -> Any:
    """How hybrid fuses: rrf (default) or weighted (implied by hybrid_weights)."""
    return Field(
        None,
        description="hybrid fusion: rrf (reciprocal rank fusion, the default) or weighted "
        "(weighted normalised scores; implied by hybrid_weights)",
    )


def hybrid_weights_field() -> Any:
    """Two weights in [0, 1]: vector, keyword."""
    return Field(
        None,
        min_length=2,
        max_length=2,
        description="weights of the vector and keyword rankings for ranker=weighted, each "
        "within 0..1, not both 0 (e.g. [0.7, 0.3])",
    )


def rrf_k_field() -> Any:
    """RRF's k: 1 .. 16384."""
    return Field(60, ge=1, le=16384, description="RRF's k: score = sum of 1 / (k + rank)")


def fusion_from(
    ranker: str | None, weights: list[float] | tuple[float, ...] | None, rrf_k: int = 60
) -> Fusion:
    """The Fusion of these options (a ConfigError for weights that cannot be used)."""
    if weights is not None:
        values = tuple(float(w) for w in weights)
        if len(values) != 2 or any(not 0.0 <= w <= 1.0 for w in values) or sum(values) <= 0:
            raise ConfigError(
                "hybrid weights are two numbers within 0..1 (vector, keyword), not both 0, "
                f"e.g. 0.7,0.3; got {','.join(str(w) for w in weights)}"
            )
        if ranker == "rrf":
            raise ConfigError("hybrid weights go with ranker=weighted; drop one of them")
        return Fusion(ranker="weighted", rrf_k=rrf_k, weights=(values[0], values[1]))
    return Fusion(ranker=ranker or "rrf", rrf_k=rrf_k)


def parse_weights(text: str) -> list[float]:
    """``0.7,0.3`` as two floats (a ConfigError naming the flag otherwise)."""
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError as exc:
        raise ConfigError(
            f"--hybrid-weights takes two numbers such as 0.7,0.3 (vector, keyword); got {text!r}"
        ) from exc
    if len(values) != 2:
        raise ConfigError(
            f"--hybrid-weights takes two numbers such as 0.7,0.3 (vector, keyword); got {text!r}"
        )
    return values


class RankingFlags(BaseModel):
    """``mmrag search``'s paging and ranking flags, checked as the API checks them."""

    model_config = ConfigDict(extra="forbid")

    offset: int = offset_field()
    min_score: float | None = min_score_field()
    diversity: float = diversity_field()
    mode: Mode | None = mode_field()
    ranker: Ranker | None = ranker_field()
    hybrid_weights: list[float] | None = hybrid_weights_field()
    rrf_k: int = rrf_k_field()

    def fusion(self) -> Fusion:
        """How hybrid fuses, from the ranker, weights and RRF k."""
        return fusion_from(self.ranker, self.hybrid_weights, self.rrf_k)

    @classmethod
    def checked(cls, **values: Any) -> RankingFlags:
        """The flags, or a ConfigError naming each bad one with the API's message."""
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            problems = [
                f"--{str(err['loc'][0]).replace('_', '-')}: {err['msg']}" for err in exc.errors()
            ]
            raise ConfigError("; ".join(problems)) from exc
