"""Request and response models of the search API (pydantic at the edge)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from retrieval.api.filters import FILTER_DESCRIPTION, FILTER_EXAMPLE
from retrieval.search_options import diversity_field, min_score_field, offset_field

MAX_K = 1000
COLLECTION_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,254}$"
ITEM_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"


class SearchOptions(BaseModel):
    """Paging, filtering and re-ranking shared by text and image search."""

    model_config = ConfigDict(extra="forbid")

    k: int = Field(10, ge=1, le=MAX_K, description=f"hits per page (1..{MAX_K})")
    offset: int = offset_field()
    filter: dict[str, Any] | None = Field(
        None, description=FILTER_DESCRIPTION, examples=[FILTER_EXAMPLE]
    )
    min_score: float | None = min_score_field()
    diversity: float = diversity_field()
    collection: str | None = Field(
        None,
        pattern=COLLECTION_PATTERN,
        description="collection to search (default: the server's MMRAG_COLLECTION)",
    )


class TextSearchRequest(SearchOptions):
    """Text-to-image search."""

    query: str = Field(
        ..., min_length=1, description="what to look for (1..MMRAG_MAX_QUERY_CHARS characters)",
        examples=["a dog on a beach"],
    )


class ImageUrlSearchRequest(SearchOptions):
    """Image-to-image search with the query image fetched from a URL."""

    url: str = Field(
        ..., min_length=1, max_length=2048, description="http(s) URL of the query image",
        examples=["https://example.com/cat.jpg"],
    )


class HitOut(BaseModel):
    """One ranked item."""

    id: str
    score: float = Field(description="cosine similarity to the query (higher is closer)")
    caption: str
    metadata: dict[str, Any]
    source: str = Field(description="where the item was ingested from")
    modality: str
    image_url: str = Field(description="this API's URL of the original image")
    thumbnail_url: str = Field(description="this API's URL of a 256-px thumbnail")


class SearchResponse(BaseModel):
    """A page of hits."""

    collection: str
    k: int
    offset: int
    hits: list[HitOut]
    took_ms: float


class ItemOut(BaseModel):
    """A stored item's fields."""

    id: str
    collection: str
    caption: str
    metadata: dict[str, Any]
    source: str
    modality: str
    model_id: str
    image_url: str
    thumbnail_url: str


class CollectionOut(BaseModel):
    """A collection and how it is indexed."""

    name: str
    count: int
    model: str
    dimension: int
    index: str
    metric: str
    default: bool


class CollectionsResponse(BaseModel):
    """Every collection this server can search."""

    collections: list[CollectionOut]


class CacheStats(BaseModel):
    """Text-query embedding cache counters."""

    size: int
    capacity: int
    hits: int
    misses: int


class StatsResponse(BaseModel):
    """Count, model, dimension and index of a collection, and the serving model."""

    collection: str
    count: int
    model: str
    dimension: int
    index: str
    metric: str
    query_model: str | None = Field(description="the model this server embeds queries with")
    model_loaded: bool
    query_cache: CacheStats


class HealthResponse(BaseModel):
    """The process is up."""

    status: str = "ok"


class ReadyResponse(BaseModel):
    """Model loaded and Milvus answering."""

    status: str = "ready"
    model: str
    collection: str
    collection_exists: bool


class ErrorDetail(BaseModel):
    """What went wrong."""

    type: str = Field(examples=["invalid_request"])
    message: str
    details: Any | None = None


class ErrorResponse(BaseModel):
    """The shape of every 4xx/5xx answer."""

    error: ErrorDetail


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries documenting the error shape for these status codes."""
    return {code: {"model": ErrorResponse} for code in codes}
