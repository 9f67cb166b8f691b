"""Uploaded files of an ingest job: spooled under the server's data dir, then kept by content.

A request's files are written to a spool folder of their job (``<data>/ingest-spool/<job>``,
0700, files 0600) while the request is read. When the job runs, each spooled file moves to the
upload folder under its content hash (``<uploads>/<blake2b id><ext>``, so one image is kept
once): that path is the stored row's ``source``, which ``GET /items/{id}/image`` serves. Its
``name`` and ``folder`` (a picked folder's relative path) are the uploader's. When the job ends
the spool folder is removed, and so are the kept files of uploads that were rejected.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from ingest.metadata import valid_text
from ingest.sources import IMAGE_EXTENSIONS, SourceItem
from retrieval.ids import content_id
from retrieval.stores import is_local_uri

COPY_CHUNK = 1024 * 1024


def data_dir(uri: str, upload_dir: Path | None) -> Path:
    """Where a server keeps uploads: MMRAG_UPLOAD_DIR, else ``<db>.uploads`` next to a Lite file,
    else ``./mmrag-uploads``."""
    if upload_dir is not None:
        return Path(upload_dir).expanduser()
    if is_local_uri(uri):
        db = Path(uri.strip()).expanduser().resolve()
        return db.parent / f"{db.stem}.uploads"
    return Path.cwd() / "mmrag-uploads"


def private_dir(path: Path) -> Path:
    """Create a folder readable by its owner only (0700), parents included."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def upload_name(filename: str) -> tuple[str, str]:
    """(name, folder) of an uploaded file's name as the browser sent it (a picked folder sends
    ``trip/day1/a.jpg``); never used as a path on the server."""
    given = PurePosixPath(filename.replace("\\", "/")).parts
    parts = [p for p in given if p not in ("", ".", "..", "/")]
    name = valid_text(parts[-1]) if parts else "upload"
    return name, "/".join(valid_text(p) for p in parts[:-1])


@dataclass(frozen=True)
class SpooledFile:
    """One uploaded file in the spool: where it is, what the uploader called it, its size."""

    path: Path
    name: str
    folder: str
    size: int
    refused: str | None = None  # e.g. over the upload cap: a reject, never kept


@dataclass
class Spool:
    """The spool folder of one job and the files written to it."""

    root: Path
    files: list[SpooledFile] = field(default_factory=list)

    @classmethod
    def create(cls, base: Path, job_id: str) -> Spool:
        """A fresh spool folder for a job under ``<base>/ingest-spool``."""
        parent = private_dir(base / "ingest-spool")
        return cls(Path(tempfile.mkdtemp(prefix=f"{job_id}-", dir=parent)))

    def add(self, filename: str, stream: BinaryIO, cap: int) -> SpooledFile:
        """Copy an upload into the spool; one over ``cap`` bytes is recorded as refused."""
        name, folder = upload_name(filename)
        path = self.root / f"{len(self.files):06d}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0),
                     0o600)
        size = 0
        with os.fdopen(fd, "wb") as out:
            while chunk := stream.read(COPY_CHUNK):
                size += len(chunk)
                if size > cap:
                    break
                out.write(chunk)
        refused = None
        if size > cap:
            path.unlink()
            refused = f"the file is over the upload cap of {cap} bytes (MMRAG_MAX_UPLOAD_BYTES)"
        spooled = SpooledFile(path, name, folder, size, refused)
        self.files.append(spooled)
        return spooled

    def remove(self) -> None:
        """Remove the spool folder and whatever is still in it."""
        shutil.rmtree(self.root, ignore_errors=True)


def _suffix(name: str) -> str:
    """The kept file's extension: the upload's when it is an image type, else ``.bin`` (never
    a video or text type: an upload is read as an image, and what is none is a reject)."""
    suffix = os.path.splitext(name)[1].lower()
    return suffix if suffix in IMAGE_EXTENSIONS else ".bin"


def keep(spooled: SpooledFile, kept_dir: Path) -> Path:
    """Move a spooled file to the upload folder under its content hash (a blocking step)."""
    with open(spooled.path, "rb") as handle:
        digest = content_id(handle.read())
    target = kept_dir / f"{digest}{_suffix(spooled.name)}"
    if target.exists():
        spooled.path.unlink()
    else:
        os.replace(spooled.path, target)
    return target


@dataclass
class UploadBatch:
    """The items of a job's uploads, and which kept file came from which upload."""

    spool: Spool
    kept_dir: Path
    names: dict[str, str] = field(default_factory=dict)  # kept path -> uploader's name

    def items(self) -> Iterator[SourceItem]:
        """One file item per upload (moved to the upload folder first), or its reject."""
        private_dir(self.kept_dir)
        uploaded = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        for spooled in self.spool.files:
            label = f"{spooled.folder}/{spooled.name}" if spooled.folder else spooled.name
            if spooled.refused is not None:
                yield SourceItem(source=label, error=spooled.refused, stage="read")
                continue
            path = str(keep(spooled, self.kept_dir))
            self.names[path] = label
            metadata = {"name": spooled.name, "folder": spooled.folder, "size": spooled.size,
                        "uploaded": uploaded}
            yield SourceItem(source=path, key=label, metadata=metadata, photo=True)

    def label(self, source: str) -> str:
        """The uploader's name of a kept file (other sources as they are)."""
        return self.names.get(source, source)

    def discard(self, rejected: set[str]) -> None:
        """Remove the spool and the kept files of rejected uploads."""
        self.spool.remove()
        for source in rejected:
            if source in self.names:
                Path(source).unlink(missing_ok=True)
