"""Settings: the only place mmrag reads the environment (``MMRAG_*``)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_MODEL = "ViT-B-32"
DEFAULT_PRETRAINED = "laion2b_s34b_b79k"


class Settings(BaseSettings):
    """Every knob mmrag has, read once from ``MMRAG_*`` variables (or passed explicitly)."""

    model_config = SettingsConfigDict(env_prefix="MMRAG_", extra="ignore")

    uri: str = Field("./mmrag.db", description="Milvus Lite file path, or http(s)://host:19530")
    token: str | None = Field(None, description="Milvus server token (user:password or API key)")
    collection: str = Field("mmrag", description="Collection (or alias) to read and write")
    index_type: str = Field("auto", description="auto: FLAT on Milvus Lite, HNSW on a server")

    model: str = Field(DEFAULT_MODEL, description="open_clip model name or registered config")
    pretrained: str | None = Field(
        DEFAULT_PRETRAINED, description="open_clip pretrained tag; empty for none"
    )
    checkpoint: Path | None = Field(None, description="local checkpoint file (overrides tag)")
    device: str = Field("auto", description="auto picks CUDA when present; or cpu, cuda, cuda:1")
    batch_size: int = Field(32, ge=1, le=4096, description="images per model call")
    torch_threads: int = Field(0, ge=0, description="0 lets mmrag choose")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="auto: bf16 on GPUs and on CPUs with bf16 units (AMX), else fp32"
    )

    max_image_pixels: int = Field(50_000_000, ge=1, description="decompression-bomb cap")
    decode_workers: str = Field(
        "auto", description="ingest: processes that decode and prepare images; 0 decodes in "
        "threads (--workers); auto: all cores but two when the model runs on a GPU, else 0"
    )
    jpeg_decoder: Literal["auto", "cpu", "device"] = Field(
        "auto", description="ingest: 'device' decodes JPEGs in batches on the model's device "
        "(nvJPEG on CUDA), resized and normalised there; 'cpu' with OpenCV; auto: device on CUDA"
    )
    decode_budget_mb: int = Field(
        512, ge=1, description="API: memory for decoding query images and thumbnails at once "
        "(MB); requests that do not fit wait, then get 503 with Retry-After"
    )
    decode_wait_s: float = Field(
        10.0, ge=0, description="API: how long a request waits for decoding budget before 503"
    )

    api_key: str | None = Field(None, description="when set, every route but /health needs it")
    cors_origins: list[str] = Field(default_factory=list, description="allowed CORS origins")
    max_upload_bytes: int = Field(20 * 1024 * 1024, ge=1, description="image upload size cap")
    max_query_chars: int = Field(1000, ge=1, description="longest accepted text query")
    query_cache_size: int = Field(1024, ge=0, description="LRU entries of text-query embeddings")
    batch_window_ms: float = Field(
        4.0, ge=0, description="under concurrent load, how long an idle model/store call "
        "waits for company (a lone client never waits)"
    )
    max_query_batch: int = Field(16, ge=1, description="largest micro-batch of text queries")
    search_lane: Literal["auto", "shared", "separate"] = Field(
        "auto", description="whether store searches take turns with model calls: 'shared' "
        "(one CPU lane), 'separate' (they overlap), 'auto': shared when the store runs on this "
        "machine (Milvus Lite, a loopback server)"
    )
    thumbnail_dir: Path | None = Field(None, description="thumbnail cache (default: next to db)")

    llm: Literal["extractive", "openai"] = Field("extractive", description="answerer backend")
    llm_base_url: str = Field("https://api.openai.com/v1", description="OpenAI-compatible URL")
    llm_api_key: str | None = Field(None, description="key for the LLM endpoint")
    llm_model: str = Field("gpt-4o-mini", description="chat model name at the endpoint")
    llm_vision: Literal["auto", "on", "off"] = Field("auto", description="send images to the LLM")
    llm_timeout_s: float = Field(60.0, gt=0, description="LLM request timeout")
    llm_max_retries: int = Field(2, ge=0, description="retries with backoff on LLM errors")
    llm_context_items: int = Field(8, ge=1, le=100, description="retrieved items in the prompt")
    llm_context_chars: int = Field(8000, ge=200, description="character budget of the context")
    llm_caption_chars: int = Field(600, ge=20, description="longest caption put in the prompt")
    llm_metadata_chars: int = Field(400, ge=20, description="longest metadata JSON in the prompt")
    llm_max_images: int = Field(4, ge=0, le=20, description="top images sent when vision is on")
    llm_image_px: int = Field(512, ge=64, le=2048, description="longest side of images sent")

    log_level: Literal["debug", "info", "warning", "error"] | None = Field(
        None, description="unset: quiet (mmrag's own messages, library warnings; `mmrag serve` "
        "logs requests at info); info or debug also show library logs and warnings, as -v does"
    )

    # Search API: image-by-URL queries refuse loopback/private/link-local hosts unless allowed.
    allow_private_urls: bool = Field(False, description="let /search/image fetch private hosts")

    # API ingest (POST /ingest): server paths only under these roots; uploads kept, jobs capped.
    ingest_roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=list, description="API: server folders whose files and manifests "
        "POST /ingest may read (a JSON list, or paths separated by ':'); none by default"
    )
    ingest_queue: int = Field(8, ge=1, description="API: ingest jobs waiting to run before 429")
    ingest_max_files: int = Field(10_000, ge=1, description="API: files in one upload request")
    ingest_request_mb: int = Field(
        2048, ge=1, description="API: largest POST /ingest upload request (MB; each file is "
        "capped by MMRAG_MAX_UPLOAD_BYTES)"
    )
    upload_dir: Path | None = Field(
        None, description="API: where uploaded images are kept (default: <db>.uploads next to "
        "a Lite file, else ./mmrag-uploads)"
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower_log_level(cls, value: object) -> object:
        """MMRAG_LOG_LEVEL=INFO is info; an empty value is unset."""
        return (value.strip().lower() or None) if isinstance(value, str) else value

    @field_validator("ingest_roots", mode="before")
    @classmethod
    def _split_roots(cls, value: object) -> object:
        """MMRAG_INGEST_ROOTS as a JSON list or as paths joined by the path separator."""
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part for part in text.split(os.pathsep) if part.strip()]

    def pretrained_tag(self) -> str | None:
        """The pretrained tag, or None when unset or blank."""
        return self.pretrained or None
