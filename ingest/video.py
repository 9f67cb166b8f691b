"""Sample video frames every N seconds with OpenCV, with ids that are stable across reruns.

* Sample k is the first frame at or after ``k * every`` seconds (frame index ``ceil(k*every*fps)``);
  its timestamp is ``index / fps`` rounded to milliseconds.
* The frame's ``source`` is ``<video path>#t=<seconds>`` (seconds as written by
  :func:`format_ts`: up to 3 decimals, no trailing zeros, e.g. ``clip.mp4#t=2``,
  ``clip.mp4#t=4.004``) and its metadata is ``{"video": path, "video_ts": seconds,
  "frame": index}``.
* The frame's id is the content hash of ``"<video content hash>#t=<seconds>"``: it depends on
  the video's bytes and the timestamp only, not on how a frame decodes or re-encodes, so a rerun
  computes the same ids before decoding anything and skips frames already stored.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import cv2
import numpy as np

from retrieval.ids import ID_HEX_CHARS, content_id

MAX_FPS = 1000.0
_HASH_CHUNK = 1 << 20


class VideoError(Exception):
    """A video that cannot be opened or decoded; the message is the reject reason."""


@dataclass(frozen=True)
class Sample:
    """One planned frame: its index in the stream, timestamp and stable id."""

    index: int
    ts: float
    ts_text: str
    id: str


@dataclass(frozen=True)
class Frame:
    """A decoded sample: the plan plus its RGB pixels (None when skipped as already stored)."""

    sample: Sample
    rgb: np.ndarray | None


def format_ts(seconds: float) -> str:
    """Seconds with at most 3 decimals and no trailing zeros (``0``, ``2``, ``4.004``)."""
    text = f"{seconds:.3f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def file_hash(path: str | Path, opener: Callable[[str], IO[bytes]] | None = None) -> str:
    """The content id of a file's bytes (as ``content_id`` would give), read in 1 MiB chunks."""
    digest = hashlib.blake2b(digest_size=ID_HEX_CHARS // 2)
    with (opener or _open)(str(path)) as handle:
        for chunk in iter(lambda: handle.read(_HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _open(path: str) -> IO[bytes]:
    return open(path, "rb")


def frame_id(video_hash: str, ts_text: str) -> str:
    """The stable id of the frame at ``ts_text`` seconds of the video with this content hash."""
    return content_id(f"{video_hash}#t={ts_text}".encode())


def frame_source(video: str, ts_text: str) -> str:
    """The ``source`` of a frame: ``<video path>#t=<seconds>``."""
    return f"{video}#t={ts_text}"


def sample_at(index: int, fps: float, video_hash: str) -> Sample:
    """The Sample for a frame index of a video."""
    ts = round(index / fps, 3)
    text = format_ts(ts)
    return Sample(index=index, ts=ts, ts_text=text, id=frame_id(video_hash, text))


class VideoReader:
    """An opened video: its frame rate and (estimated) length, and sequential sampling."""

    def __init__(self, path: str, every_s: float) -> None:
        if every_s <= 0:
            raise ValueError(f"sampling interval must be positive, got {every_s}")
        self.path = path
        self.every_s = every_s
        self.cap = cv2.VideoCapture(path)
        if not self.cap.isOpened():
            self.cap.release()
            raise VideoError("cannot open video (not a video, truncated, or unsupported codec)")
        fps = float(self.cap.get(cv2.CAP_PROP_FPS) or 0.0)
        if not math.isfinite(fps) or not 0 < fps <= MAX_FPS:
            self.cap.release()
            raise VideoError(f"video reports no usable frame rate ({fps})")
        self.fps = fps
        count = self.cap.get(cv2.CAP_PROP_FRAME_COUNT)
        self.frame_count = int(count) if math.isfinite(count) and count > 0 else 0
        self.decoded = 0

    def close(self) -> None:
        """Release the decoder."""
        self.cap.release()

    def next_index(self, k: int) -> int:
        """The frame index of sample k: the first frame at or after ``k * every_s``."""
        return max(0, math.ceil(k * self.every_s * self.fps - 1e-6))

    def planned(self, video_hash: str) -> list[Sample]:
        """The samples the container's frame count announces (empty when it gives none)."""
        samples: list[Sample] = []
        k, index = 0, self.next_index(0)
        while index < self.frame_count:
            samples.append(sample_at(index, self.fps, video_hash))
            k, index = self.after(k, index)
        return samples

    def after(self, k: int, index: int) -> tuple[int, int]:
        """The next sample number and frame index after sample k at frame ``index``."""
        k += 1
        while (nxt := self.next_index(k)) <= index:  # intervals shorter than a frame
            k += 1
        return k, nxt

    def frames(self, video_hash: str, skip: set[str]) -> Iterator[Frame]:
        """Decode the stream in order, yielding each sample; ids in ``skip`` are not decoded."""
        k, index = 0, 0
        target = self.next_index(0)
        while self.cap.grab():
            if index == target:
                sample = sample_at(index, self.fps, video_hash)
                rgb = None
                if sample.id not in skip:
                    ok, bgr = self.cap.retrieve()
                    if not ok or bgr is None or bgr.size == 0:
                        raise VideoError(f"cannot decode the frame at t={sample.ts_text}s")
                    rgb = _to_rgb(bgr)
                yield Frame(sample, rgb)
                k, target = self.after(k, index)
            index += 1
            self.decoded = index


def _to_rgb(frame: np.ndarray) -> np.ndarray:
    """A decoded OpenCV frame (BGR, BGRA or gray) as contiguous RGB uint8."""
    if frame.dtype != np.uint8:
        frame = cv2.convertScaleAbs(frame)
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
