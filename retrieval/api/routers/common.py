"""Helpers shared by routers: URLs of served images, hit conversion, search parameters."""

from __future__ import annotations

from urllib.parse import quote, urlencode

from fastapi import Request

from retrieval.api.filters import build_expression, requested_keys
from retrieval.api.schemas import HitOut, SearchOptions
from retrieval.api.service import Service
from retrieval.filters import with_modality
from retrieval.search import SearchRequest, check_page
from retrieval.search_options import fusion_from
from retrieval.types import Hit

THUMBNAIL_SIZE = 256


def image_urls(request: Request, item_id: str, collection: str | None) -> tuple[str, str]:
    """(original, thumbnail) URLs this API serves for an item, relative to the host."""
    base = f"{request.scope.get('root_path', '')}/items/{quote(item_id, safe='')}/image"
    extra = {"collection": collection} if collection else {}
    original = f"{base}?{urlencode(extra)}" if extra else base
    thumbnail = f"{base}?{urlencode({'size': THUMBNAIL_SIZE, **extra})}"
    return original, thumbnail


def hit_out(request: Request, hit: Hit, collection: str | None) -> HitOut:
    """A Hit as the API returns it."""
    original, thumbnail = image_urls(request, hit.id, collection)
    return HitOut(
        id=hit.id,
        score=float(hit.score),
        caption=hit.caption,
        metadata=dict(hit.metadata),
        source=hit.source,
        modality=getattr(hit.modality, "value", str(hit.modality)),
        image_url=original,
        thumbnail_url=thumbnail,
    )


def non_default(service: Service, collection: str | None) -> str | None:
    """The collection name when it is not the server's default (for URLs)."""
    return collection if collection and collection != service.settings.collection else None


async def search_params(service: Service, options: SearchOptions) -> SearchRequest:
    """Check paging against Milvus limits and turn the filter into a safe expression."""
    check_page(options.k, options.offset)  # a ConfigError: the API's 422 invalid_request
    expr = None
    if options.filter:
        wanted = requested_keys(options.filter)
        fields = service.fields
        keys = await fields.metadata_keys(options.collection, wanted) if wanted else frozenset()
        expr = build_expression(options.filter, keys)
    expr = with_modality(expr, options.modality)
    return SearchRequest(
        k=options.k,
        offset=options.offset,
        expr=expr,
        min_score=options.min_score,
        diversity=options.diversity,
        mode=options.mode,
        fusion=fusion_from(options.ranker, options.hybrid_weights, options.rrf_k),
    )
