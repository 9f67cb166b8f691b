"""The ingest job's URL fetcher; it lives in ``retrieval.fetch`` so operators can share it."""

from retrieval.fetch import (
    MAX_REDIRECTS,
    USER_AGENT,
    Fetcher,
    FetchError,
    FetchOptions,
    looks_like_image,
)

__all__ = [
    "MAX_REDIRECTS", "USER_AGENT", "FetchError", "FetchOptions", "Fetcher", "looks_like_image",
]
