"""Items -> works: one per image or URL, one per sampled frame of a video, one per passage.

Videos are decoded here, sequentially on the pipeline's expand thread, while images are read and
decoded by the worker threads downstream. Frames already stored are skipped without decoding
(their ids are known before decoding), and a fully stored video is not decoded at all.

Text documents are read, decoded and split into passages here too (``retrieval.text_rows``):
passage ids are known from the text, so stored passages come out as duplicates, and the
document's passages of older content (an edited file) are removed from the store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import cv2

from ingest.loading import Prepare, Work
from ingest.sources import SourceItem
from ingest.video import Sample, VideoError, VideoReader, file_hash, frame_source
from retrieval.errors import EmbeddingError
from retrieval.image_rows import (
    DEFAULT_MAX_BYTES,
    FileReadError,
    open_regular,
    os_reason,
    read_file,
)
from retrieval.text_rows import (
    TextBudget,
    decode_text,
    document_id,
    passage_id,
    passage_metadata,
    stale_passages_expr,
)

MAX_SOURCE_BYTES = 2048  # the store's source field


class DocumentLog(Protocol):
    """What the job records about text documents while they are expanded."""

    def claim(self, key: str, doc_id: str, source: str) -> str | None:
        """None when ``key`` is new in this run or has this content, else the reject reason."""

    def recoded(self, source: str, note: str) -> None:
        """A document that was not valid UTF-8 and was decoded with replacements."""

    def removed(self, n: int) -> None:
        """n passages of edited documents' older content were removed from the store."""


@dataclass(frozen=True)
class Expander:
    """Turns SourceItems into Works; knows the store (for frame and passage ids, and to remove
    edited documents' old passages), the model's prepare and its text budget."""

    existing_ids: Callable[[Sequence[str]], set[str]]
    prepare: Prepare
    every_s: float
    max_pixels: int
    on_planned: Callable[[int], None] | None = None
    budget: TextBudget | None = None
    remove_where: Callable[[str], int] | None = None
    documents: DocumentLog | None = None
    max_bytes: int = DEFAULT_MAX_BYTES

    def expand(self, item: SourceItem) -> Iterable[Work]:
        """The works of one item (a generator for videos, so frames stream lazily)."""
        limit = MAX_SOURCE_BYTES - (16 if item.kind == "video" else 0)  # room for '#t=...'
        if item.error is None and len(item.source.encode("utf-8", "replace")) > limit:
            return [Work.of(item).reject(f"source is over {limit} bytes", "read")]
        if item.error is None and item.kind == "video":
            return self._video(item)
        if item.error is None and item.kind == "text":
            return self._text(item)
        return [Work.of(item)]

    def _text(self, item: SourceItem) -> Iterator[Work]:
        """The passages of a text document (stored ones as duplicates), or its reject."""
        whole = Work.of(item)
        if self.budget is None:
            yield whole.reject(
                "this engine does not ingest text documents; ingest them with --engine local",
                "text",
            )
            return
        note = ""
        if item.text is None:
            try:
                text, note = decode_text(read_file(item.source, self.max_bytes))
            except FileReadError as exc:
                yield whole.reject(str(exc), "read")
                return
        else:
            text = item.text
        if not text.strip():
            yield whole.reject("the document has no text (only whitespace)", "text")
            return
        doc_id = document_id(text)
        key = item.id or (doc_id if item.text is not None else item.source)
        conflict = self.documents.claim(key, doc_id, item.source) if self.documents else None
        if conflict is not None:
            yield whole.reject(conflict, "conflict")
            return
        passages = self.budget.split(text)
        ids = [passage_id(key, doc_id, p.index) for p in passages]
        stored = self.existing_ids(ids)
        stale = stale_passages_expr(key, doc_id)
        if stale is not None and self.remove_where is not None:
            removed = self.remove_where(stale)
            if removed and self.documents is not None:
                self.documents.removed(removed)
        if note and self.documents is not None:
            self.documents.recoded(item.source, note)
        if self.on_planned is not None:
            self.on_planned(len(passages))
        for passage, row_id in zip(passages, ids, strict=True):
            yield Work(
                item=item,
                source=item.source,
                id=row_id,
                metadata=passage_metadata(key, doc_id, passage, len(passages), item.metadata),
                text=None if row_id in stored else passage.text,
                duplicate=row_id in stored,
            )

    def _video(self, item: SourceItem) -> Iterator[Work]:
        """Sampled frames of a video, then a reject if the stream broke off early."""
        whole = Work.of(item)
        try:
            video_hash = file_hash(item.source, open_regular)
        except OSError as exc:
            yield whole.reject(f"cannot read video: {os_reason(exc)}", "read")
            return
        try:
            reader = VideoReader(item.source, self.every_s)
        except (VideoError, cv2.error) as exc:
            yield whole.reject(str(exc), "video")
            return
        try:
            planned = reader.planned(video_hash)
            stored = self.existing_ids([s.id for s in planned]) if planned else set()
            if self.on_planned is not None and planned:
                self.on_planned(len(planned))
            if planned and len(stored) == len(planned):
                for sample in planned:
                    yield self._frame(item, sample, duplicate=True)
                return
            yield from self._decode(item, reader, video_hash, stored)
        finally:
            reader.close()

    def _decode(
        self, item: SourceItem, reader: VideoReader, video_hash: str, stored: set[str]
    ) -> Iterator[Work]:
        """Decode the video in order; frames in ``stored`` are yielded as duplicates."""
        whole = Work.of(item)
        produced = 0
        try:
            for frame in reader.frames(video_hash, stored):
                produced += 1
                if frame.rgb is None:
                    yield self._frame(item, frame.sample, duplicate=True)
                    continue
                height, width = frame.rgb.shape[:2]
                if height * width > self.max_pixels:
                    yield whole.reject(
                        f"frames are {width}x{height}, over the pixel cap of {self.max_pixels}",
                        "video",
                    )
                    return
                try:
                    prepared = self.prepare(frame.rgb)
                except EmbeddingError as exc:
                    yield whole.reject(f"t={frame.sample.ts_text}s: {exc}", "video")
                    return
                yield self._frame(item, frame.sample, prepared=prepared)
        except (VideoError, cv2.error) as exc:
            yield whole.reject(" ".join(str(exc).split())[:200], "video")
            return
        if produced == 0:
            yield whole.reject("no decodable frame (broken or empty video)", "video")
        elif reader.frame_count and reader.decoded < reader.frame_count - max(2, reader.fps):
            yield whole.reject(
                f"stream ends at frame {reader.decoded} of {reader.frame_count} "
                f"(truncated or corrupt); the {produced} samples before it were kept",
                "video",
            )

    @staticmethod
    def _frame(
        item: SourceItem, sample: Sample, *, prepared: object = None, duplicate: bool = False
    ) -> Work:
        """The work of one sampled frame."""
        metadata = {
            **item.metadata,
            "video": item.source,
            "video_ts": sample.ts,
            "frame": sample.index,
        }
        return Work(
            item=item,
            source=frame_source(item.source, sample.ts_text),
            id=sample.id,
            metadata=metadata,
            prepared=prepared,
            duplicate=duplicate,
        )
