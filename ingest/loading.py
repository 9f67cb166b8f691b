"""Per-item work done in parallel with the model: read bytes, hash, decode, prepare."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ingest.sources import SourceItem
from retrieval.errors import ImageDecodeError
from retrieval.ids import content_id
from retrieval.imaging import decode_image


@dataclass(frozen=True)
class Loaded:
    """An item on its way through the job; exactly one of prepared/error is set once decoded."""

    item: SourceItem
    id: str = ""
    data: bytes | None = None
    prepared: Any = None
    error: str | None = None
    duplicate: bool = False

    @property
    def ready(self) -> bool:
        """Decoded and prepared, new, and not rejected."""
        return self.prepared is not None and self.error is None and not self.duplicate


def read_item(item: SourceItem) -> Loaded:
    """Read the item's bytes and derive its id (the manifest's id wins over the content hash)."""
    try:
        data = Path(item.source).read_bytes()
    except OSError as exc:
        return Loaded(item=item, error=f"cannot read file: {exc.strerror or exc}")
    if not data:
        return Loaded(item=item, error="empty file (0 bytes)")
    return Loaded(item=item, id=item.id or content_id(data), data=data)


def decode_loaded(
    loaded: Loaded, prepare: Callable[[Any], Any], max_pixels: int
) -> Loaded:
    """Decode and prepare a new item for the model; rejects carry a one-line reason."""
    if loaded.error is not None or loaded.duplicate or loaded.data is None:
        return replace(loaded, data=None)
    try:
        rgb = decode_image(loaded.data, max_pixels=max_pixels)
    except ImageDecodeError as exc:
        return replace(loaded, data=None, error=str(exc))
    return replace(loaded, data=None, prepared=prepare(rgb))
