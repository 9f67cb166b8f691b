"""Items -> works: one per image or URL, one per sampled frame of a video.

Videos are decoded here, sequentially on the pipeline's expand thread, while images are read and
decoded by the worker threads downstream. Frames already stored are skipped without decoding
(their ids are known before decoding), and a fully stored video is not decoded at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import cv2

from ingest.loading import Prepare, Work
from ingest.sources import SourceItem
from ingest.video import Sample, VideoError, VideoReader, file_hash, frame_source
from retrieval.errors import EmbeddingError
from retrieval.image_rows import open_regular, os_reason

MAX_SOURCE_BYTES = 2048  # the store's source field


@dataclass(frozen=True)
class Expander:
    """Turns SourceItems into Works; knows the store (for frame ids) and the model's prepare."""

    existing_ids: Callable[[Sequence[str]], set[str]]
    prepare: Prepare
    every_s: float
    max_pixels: int
    on_planned: Callable[[int], None] | None = None

    def expand(self, item: SourceItem) -> Iterable[Work]:
        """The works of one item (a generator for videos, so frames stream lazily)."""
        limit = MAX_SOURCE_BYTES - (16 if item.kind == "video" else 0)  # room for '#t=...'
        if item.error is None and len(item.source.encode("utf-8", "replace")) > limit:
            return [Work.of(item).reject(f"source is over {limit} bytes", "read")]
        if item.error is None and item.kind == "video":
            return self._video(item)
        return [Work.of(item)]

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
