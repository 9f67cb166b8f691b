"""The search options the API and the CLI share: one definition of each limit and its message.

The API's request models and ``mmrag search``'s flags declare these fields with the same
factories, so a value is refused by the same rule with the same message (pydantic's) on both.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from retrieval.errors import ConfigError
from retrieval.limits import MAX_TOPK


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


class RankingFlags(BaseModel):
    """``mmrag search``'s paging and ranking flags, checked as the API checks them."""

    model_config = ConfigDict(extra="forbid")

    offset: int = offset_field()
    min_score: float | None = min_score_field()
    diversity: float = diversity_field()

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
