"""Where items come from: each source yields SourceItems in a stable order."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retrieval.errors import ConfigError

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
)


@dataclass(frozen=True)
class SourceItem:
    """One thing to ingest: where its bytes live and what describes it."""

    source: str
    caption: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    id: str | None = None


def is_image_path(path: Path) -> bool:
    """Whether the file name has an image extension (case-insensitive)."""
    return path.suffix.lower() in IMAGE_EXTENSIONS


def iter_folder(root: Path) -> Iterator[SourceItem]:
    """Every image file under root, recursively, in sorted (deterministic) order."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if is_image_path(path):
                yield SourceItem(source=str(path.resolve()))


def open_source(source: str | Path) -> Iterator[SourceItem]:
    """Items of a source: for now a directory of images."""
    path = Path(source)
    if path.is_dir():
        return iter_folder(path)
    if not path.exists():
        raise ConfigError(f"source {str(source)!r} does not exist")
    raise ConfigError(f"source {str(source)!r} is not a directory")
