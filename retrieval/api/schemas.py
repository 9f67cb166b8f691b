"""Request and response models of the search API (pydantic at the edge)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from retrieval.api.filters import FILTER_DESCRIPTION, FILTER_EXAMPLE
from retrieval.search_options import (
    Mode,
    Ranker,
    diversity_field,
    hybrid_weights_field,
    min_score_field,
    mode_field,
    offset_field,
    ranker_field,
    rrf_k_field,
)

MAX_K = 1000
COLLECTION_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,254}$"
ITEM_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"


class SearchOptions(BaseModel):
    """Paging, filtering and re-ranking shared by text and image search.

    Strict: ``k: true`` or ``k: "5"`` is a 422, not 1 or 5 (the upload form's text fields are
    converted by their declared type first, see ``routers.search``).
    """

    model_config = ConfigDict(extra="forbid", strict=True)

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
    mode: Mode | None = mode_field()
    modality: Literal["image", "text"] | None = Field(
        None,
        description="only rows of this kind: image (images and video frames) or text "
        "(passages of text documents); unset: both",
    )
    ranker: Ranker | None = ranker_field()
    hybrid_weights: list[float] | None = hybrid_weights_field()
    rrf_k: int = rrf_k_field()


class TextSearchRequest(SearchOptions):
    """Text-to-image search."""

    query: str = Field(
        ..., min_length=1, description="what to look for (1..MMRAG_MAX_QUERY_CHARS characters)",
        examples=["a dog on a beach"],
    )


class ImageUrlSearchRequest(SearchOptions):
    """Image-to-image search with the query image fetched from a URL."""

    url: str = Field(  # no example: the server fetches only public hosts it can reach
        ..., min_length=1, max_length=2048,
        description="http(s) URL of the query image, on a public host",
    )


class HitOut(BaseModel):
    """One ranked item."""

    id: str
    score: float = Field(
        description="higher is closer: cosine similarity (mode vector), BM25 (keyword), or "
        "the fused score (hybrid: RRF or weighted)"
    )
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
    mode: str = Field("vector", description="how the hits were ranked: vector, keyword, hybrid")
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


class ItemsDeleteRequest(BaseModel):
    """Delete every item a filter matches; ``confirm`` is required (an empty filter matches
    every item), ``dry_run`` only counts."""

    model_config = ConfigDict(extra="forbid", strict=True)

    filter: dict[str, Any] | None = Field(
        None, description=FILTER_DESCRIPTION + " Empty or absent: every item.",
        examples=[FILTER_EXAMPLE],
    )
    confirm: bool = Field(False, description="must be true to delete anything")
    dry_run: bool = Field(False, description="count what the filter matches; delete nothing")
    collection: str | None = Field(
        None, pattern=COLLECTION_PATTERN,
        description="collection to delete from (default: the server's MMRAG_COLLECTION)",
    )


class ItemsDeleted(BaseModel):
    """What a delete removed (or, as a dry run, would remove)."""

    collection: str
    deleted: int = Field(description="items removed (0 for a dry run)")
    matched: int = Field(description="items the id or filter matched")
    dry_run: bool = False
    ids: list[str] | None = Field(None, description="the removed id (single-item deletes)")


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


MAX_INGEST_URLS = 10_000
MAX_INGEST_PATHS = 100
INGEST_JOB_PATTERN = r"^[0-9a-f]{16}$"


class IngestJsonRequest(BaseModel):
    """An ingest job of image URLs and server paths (folders, manifests, files under
    ``MMRAG_INGEST_ROOTS``); files are uploaded as multipart instead."""

    model_config = ConfigDict(extra="forbid", strict=True)

    urls: list[str] = Field(
        default_factory=list, max_length=MAX_INGEST_URLS,
        description="http(s) image URLs on public hosts (each fetched through the SSRF guard)",
    )
    paths: list[str] = Field(
        default_factory=list, max_length=MAX_INGEST_PATHS,
        description="absolute server paths under MMRAG_INGEST_ROOTS: folders (recursive), "
        "manifests (.csv .tsv .parquet .jsonl) or image/video files",
    )
    collection: str | None = Field(
        None, pattern=COLLECTION_PATTERN,
        description="collection to write (default: the server's MMRAG_COLLECTION)",
    )


class IngestSourcesOut(BaseModel):
    """What a job was asked to ingest."""

    uploads: int
    urls: int
    paths: list[str]


class IngestProgressOut(BaseModel):
    """Items finished, of how many (null until a folder has been counted)."""

    done: int
    total: int | None


class IngestCountsOut(BaseModel):
    """Outcomes so far: new rows, items already stored, rejects, files skipped by type."""

    ingested: int
    duplicates: int
    rejected: int
    skipped: int


class IngestRejectOut(BaseModel):
    """An item the job could not ingest, and why."""

    source: str = Field(description="the uploaded file's name, the URL, or the server path")
    reason: str
    stage: str = Field(description="read, fetch, decode, manifest, conflict, video or store")


class IngestJobOut(BaseModel):
    """An ingest job: its state, progress, counts and rejects."""

    id: str
    collection: str
    state: str = Field(description="queued, running, done, failed or cancelled")
    cancel_requested: bool
    created_at: str
    started_at: str | None
    finished_at: str | None
    sources: IngestSourcesOut
    progress: IngestProgressOut
    counts: IngestCountsOut
    skipped_by_type: dict[str, int]
    rejects: list[IngestRejectOut] = Field(description="the first 1000 rejects")
    error: str | None = Field(description="why a failed job stopped")
    message: str = Field(description="one sentence on where the job stands")


class IngestJobsResponse(BaseModel):
    """Recent ingest jobs, newest first."""

    jobs: list[IngestJobOut]


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


# What the middleware may answer before any route runs: 401 without the API key (when one is
# set), 413 for a body over the cap (any route, by Content-Length).
MIDDLEWARE_STATUSES = (401, 413)
_DESCRIPTIONS = {
    400: "the request body cannot be parsed",
    401: "missing or wrong API key (when MMRAG_API_KEY is set)",
    403: "the server path is not under MMRAG_INGEST_ROOTS (or none are set)",
    404: "unknown collection, item, ingest job or server path",
    409: "the collection was built with another model",
    410: "the item's source is gone",
    413: "the request body or image is over the size cap",
    415: "not a supported image, or not multipart/JSON",
    422: "invalid input",
    429: "too many ingest jobs are waiting (retry after the Retry-After header)",
    502: "the upstream service failed",
    503: "not ready, Milvus unavailable, or busy (retry after the Retry-After header)",
}


def document_middleware_statuses(
    schema: dict[str, Any], public_paths: frozenset[str], skip: Callable[[str], bool]
) -> None:
    """Add the statuses every operation may answer to an OpenAPI schema (in place): the
    middleware's, and FastAPI's 400 for a body it cannot parse (e.g. not UTF-8). Paths that
    ``skip`` names document their own (another error shape)."""
    ref = {"$ref": "#/components/schemas/ErrorResponse"}
    for path, item in schema.get("paths", {}).items():
        if skip(path):
            continue
        for operation in item.values():
            responses = operation.setdefault("responses", {})
            codes = [*MIDDLEWARE_STATUSES, *([400] if "requestBody" in operation else [])]
            for code in codes:
                if code == 401 and path in public_paths:
                    continue
                responses.setdefault(str(code), {
                    "description": _DESCRIPTIONS[code],
                    "content": {"application/json": {"schema": ref}},
                })


def error_responses(*codes: int, public: bool = False) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries in the error shape for these codes and the middleware's
    (401 only where the API key applies: not on ``public`` routes)."""
    every = set(codes) | {c for c in MIDDLEWARE_STATUSES if not (public and c == 401)}
    return {
        code: {"model": ErrorResponse, "description": _DESCRIPTIONS.get(code, "error")}
        for code in sorted(every)
    }
