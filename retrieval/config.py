"""Settings: the only place mmrag reads the environment (``MMRAG_*``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

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

    max_image_pixels: int = Field(50_000_000, ge=1, description="decompression-bomb cap")

    log_level: Literal["debug", "info", "warning", "error"] = "info"

    def pretrained_tag(self) -> str | None:
        """The pretrained tag, or None when unset or blank."""
        return self.pretrained or None
