"""Where items come from: a directory, a manifest or one media file, as SourceItems in order."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from ingest.file_metadata import file_fields
from ingest.metadata import valid_text
from ingest.shard import Shard
from retrieval.errors import ConfigError

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".heic", ".heif",
     ".avif"}
)
VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm"})
TEXT_EXTENSIONS = frozenset({".txt", ".md", ".markdown"})  # documents, split into passages
MANIFEST_EXTENSIONS = frozenset({".csv", ".tsv", ".parquet", ".pq", ".jsonl", ".ndjson"})

ItemKind = Literal["file", "url", "video", "text"]
_SKIP = "skip:"  # the walk's kind for a file of another type
_KINDS: dict[str, ItemKind] = {"file": "file", "video": "video", "text": "text"}


@dataclass(frozen=True)
class SourceItem:
    """One thing to ingest: where its bytes live, what describes it, and its shard key.

    ``error`` marks an entry that is rejected before any reading (a bad manifest row or an
    unreadable folder), with ``stage`` saying where it failed. ``skipped`` marks a file of a
    type mmrag does not ingest (its type, e.g. ``.psd``): it is counted, never read. ``photo``
    asks for the image's own fields (size as shown, EXIF: ``retrieval.photo_metadata``).
    A ``text`` item is a document: a text file (``text`` None: read from ``source``) or a
    manifest row's text (``text``); it becomes passage rows (``retrieval.text_rows``).
    """

    source: str
    kind: ItemKind = "file"
    caption: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    id: str | None = None
    key: str = ""
    error: str | None = None
    stage: str = "read"
    skipped: str | None = None
    photo: bool = False
    text: str | None = None


class Source(Protocol):
    """A re-iterable source of SourceItems (already restricted to one shard)."""

    name: str

    def __iter__(self) -> Iterator[SourceItem]:
        """The items, in a stable order."""
        ...

    def count(self) -> int:
        """How many items iteration yields (may walk a whole tree: call it off the hot path)."""
        ...


def media_kind(path: str | Path) -> ItemKind | None:
    """'file' for an image extension, 'video' for a video one, 'text' for a text document
    (case-insensitive), else None."""
    suffix = os.path.splitext(str(path))[1].lower()
    if suffix in IMAGE_EXTENSIONS:
        return "file"
    if suffix in VIDEO_EXTENSIONS:
        return "video"
    if suffix in TEXT_EXTENSIONS:
        return "text"
    return None


def is_image_path(path: Path) -> bool:
    """Whether the file name has an image extension (case-insensitive)."""
    return media_kind(path) == "file"


class DirectorySource:
    """Every image, video and text file under a folder, recursively, in sorted (stable) order.

    Symlinked files are followed, symlinked folders are not (no cycles). Anything else with a
    media extension is listed, so that a FIFO, socket or device named ``.jpg`` is rejected (by
    the read, which never opens one) rather than skipped silently; every other file comes as a
    ``skipped`` item naming its type. The shard key is the path relative to the folder, so
    machines mounting the data at different places agree. Each file's metadata holds its
    ``name``, ``folder`` (relative to the root), ``size`` and ``modified`` (``file_metadata``).
    """

    def __init__(self, root: Path, shard: Shard | None = None) -> None:
        self.root = root.resolve()
        self.shard = shard or Shard()
        self.name = str(self.root)
        try:
            os.scandir(self.root).close()
        except OSError as exc:
            raise ConfigError(f"cannot list source folder {self.root}: {exc.strerror}") from exc

    def __iter__(self) -> Iterator[SourceItem]:
        for path, rel, kind in self._walk(self.root, ""):
            if not self.shard.owns(rel):
                continue
            if kind is None:
                yield SourceItem(source=path, key=rel, error=_walk_error(rel), stage="read")
            elif kind.startswith(_SKIP):
                yield SourceItem(source=path, key=rel, skipped=kind[len(_SKIP):])
            else:
                media = _KINDS[kind]
                yield SourceItem(source=path, kind=media, key=rel, metadata=file_fields(path, rel),
                                 photo=media == "file")

    def count(self) -> int:
        """Items of this shard (a second walk of the tree, without reading any file; skipped
        types are not items)."""
        return sum(
            1 for _, rel, kind in self._walk(self.root, "")
            if self.shard.owns(rel) and not (kind or "").startswith(_SKIP)
        )

    def _walk(self, folder: str | Path, rel: str) -> Iterator[tuple[str, str, str | None]]:
        """(path, relative path, kind) of files: a media kind, ``skip:<type>`` for another
        type, None for an unreadable folder."""
        try:
            with os.scandir(folder) as scan:
                entries = sorted(scan, key=lambda e: e.name)
        except OSError as exc:
            if rel:
                yield str(folder), rel + "/", None
                return
            raise ConfigError(f"cannot list source folder {folder}: {exc.strerror}") from exc
        for entry in entries:
            child = f"{rel}/{entry.name}" if rel else entry.name
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                is_dir = False
            if is_dir:
                yield from self._walk(entry.path, child)
                continue
            # files, symlinks (a broken one is listed, then rejected), FIFOs and devices
            kind = media_kind(entry.name)
            if kind is not None:
                yield entry.path, child, kind
            else:
                yield entry.path, child, _SKIP + skipped_type(entry)


def skipped_type(entry: os.DirEntry[str]) -> str:
    """How a skipped file is named in the summary: its extension, or what it is."""
    try:
        if entry.is_symlink() and entry.is_dir():
            return "(link to a folder)"
    except OSError:
        pass
    suffix = os.path.splitext(entry.name)[1].lower()
    return valid_text(suffix) if suffix else "(no extension)"


def _walk_error(rel: str) -> str:
    """The reject reason for a folder the walk could not list."""
    return f"cannot list folder {rel!r} (permission denied or removed during the walk)"


class FileSource:
    """A single image, video or text file given as the source."""

    def __init__(self, path: Path, kind: ItemKind, shard: Shard | None = None) -> None:
        self.path = path.resolve()
        self.kind = kind
        self.shard = shard or Shard()
        self.name = str(self.path)

    def __iter__(self) -> Iterator[SourceItem]:
        if self.shard.owns(self.path.name):
            name = self.path.name
            yield SourceItem(source=str(self.path), kind=self.kind, key=name,
                             metadata=file_fields(str(self.path), name),
                             photo=self.kind == "file")

    def count(self) -> int:
        """One, or zero when another shard owns the file."""
        return 1 if self.shard.owns(self.path.name) else 0


def iter_folder(root: Path) -> Iterator[SourceItem]:
    """Every image and video file under root, recursively, in sorted order."""
    return iter(DirectorySource(root))


def open_source(source: str | Path, shard: Shard | None = None) -> Source:
    """The source named on the command line: a folder, a manifest, or one image/video/text file.

    Manifests are read (and checked) here, so an unreadable one fails before any work starts.
    """
    path = Path(source).expanduser()
    if path.is_dir():
        return DirectorySource(path, shard)
    if not path.exists():
        raise ConfigError(f"source {str(source)!r} does not exist")
    suffix = path.suffix.lower()
    if suffix in MANIFEST_EXTENSIONS:
        from ingest.manifest import ManifestSource

        return ManifestSource(path, shard)
    kind = media_kind(path)
    if kind is not None:
        return FileSource(path, kind, shard)
    raise ConfigError(
        f"source {str(source)!r} is not a folder, a manifest "
        f"({', '.join(sorted(MANIFEST_EXTENSIONS))}) or an image, video or text file"
    )
