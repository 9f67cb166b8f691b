"""Video sources: frames every N seconds from real files written with cv2.VideoWriter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingest import IngestOptions, run_ingest
from ingest.sources import open_source
from ingest.video import VideoReader, file_hash, format_ts, frame_id
from retrieval.components import Components
from retrieval.ids import content_id
from retrieval.search import Searcher, SearchRequest
from tests.ingest.helpers import stored_records, write_video
from tests.support.images import make_test_image

OPTIONS = IngestOptions(batch_size=8, insert_batch_size=16, dedup_batch_size=16)


@pytest.mark.parametrize(("ext", "fourcc"), [(".mp4", "mp4v"), (".avi", "MJPG"), (".mkv", "mp4v")])
def test_frames_every_two_seconds_carry_video_and_timestamp(
    components: Components, tmp_path: Path, ext: str, fourcc: str
) -> None:
    video = write_video(tmp_path / f"clip{ext}", seconds=7.0, fps=10.0, fourcc=fourcc)
    summary = run_ingest(components, open_source(video), OPTIONS)
    assert (summary.ingested, summary.rejected) == (4, 0)
    records = sorted(stored_records(components.store), key=lambda r: r.metadata["video_ts"])
    path = str(video.resolve())
    assert [r.source for r in records] == [f"{path}#t={t}" for t in ("0", "2", "4", "6")]
    size = video.stat().st_size  # each frame also carries the video file's fields
    assert [{k: v for k, v in r.metadata.items() if k != "modified"} for r in records] == [
        {"name": video.name, "folder": "", "size": size, "video": path,
         "video_ts": float(t), "frame": 10 * t} for t in (0, 2, 4, 6)
    ]
    video_hash = file_hash(video)
    assert [r.id for r in records] == [frame_id(video_hash, t) for t in ("0", "2", "4", "6")]
    assert video_hash == content_id(video.read_bytes())


def test_frame_at_t_is_the_image_shown_then(components: Components, tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.avi", seconds=6.0, fps=5.0, fourcc="MJPG", seed=900)
    run_ingest(components, open_source(video), IngestOptions(batch_size=8, video_every_s=2.0))
    searcher = Searcher(components.embedder, components.store)
    for second in (0, 2, 4):
        hits = searcher.search_image(make_test_image(900 + second, 96, 128), SearchRequest(k=1))
        assert hits[0].source.endswith(f"#t={second}")
        assert hits[0].score > 0.9


def test_rerun_skips_stored_frames_without_decoding(
    components: Components, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    video = write_video(tmp_path / "clip.mp4", seconds=5.0, fps=10.0)
    first = run_ingest(components, open_source(video), OPTIONS)
    assert first.ingested == 3

    def no_decoding(self: VideoReader, *args: object) -> None:
        raise AssertionError("a fully stored video must not be decoded again")

    monkeypatch.setattr(VideoReader, "frames", no_decoding)
    again = run_ingest(components, open_source(video), OPTIONS)
    assert (again.ingested, again.duplicates, again.rejected) == (0, 3, 0)
    monkeypatch.undo()
    finer = run_ingest(components, open_source(video), IngestOptions(video_every_s=1.0))
    assert (finer.ingested, finer.duplicates) == (2, 3)  # t=1, 3 are new; 0, 2, 4 stored
    assert components.store.count() == 5


def test_videos_in_folders_and_manifests_with_copies_and_broken_ones(
    components: Components, tmp_path: Path, make_image_files
) -> None:
    files = make_image_files(3)
    folder = files[0].parent
    clip = write_video(folder / "clip.webm", seconds=3.0, fps=8.0, fourcc="VP80")
    (folder / "copy.MOV").write_bytes(clip.read_bytes())
    (folder / "junk.mkv").write_bytes(b"definitely not a video")
    summary = run_ingest(components, open_source(folder), OPTIONS)
    # 3 images; frames at 0 and 2 s once (the copy's frames have the same ids)
    assert (summary.ingested, summary.duplicates, summary.rejected) == (5, 2, 1)
    assert summary.rejects[0].stage == "video" and "junk.mkv" in summary.rejects[0].source

    manifest = tmp_path / "videos.jsonl"
    other = write_video(tmp_path / "other.mp4", seconds=2.5, fps=10.0, seed=700)
    manifest.write_text(json.dumps({"path": other.name, "caption": "a clip", "event": "demo"}))
    run_ingest(components, open_source(manifest), OPTIONS)
    frames = [r for r in stored_records(components.store) if r.source.startswith(str(other))]
    assert len(frames) == 2
    assert all(r.caption == "a clip" and r.metadata["event"] == "demo" for r in frames)
    assert {r.metadata["video_ts"] for r in frames} == {0.0, 2.0}


def test_truncated_video_keeps_early_frames_and_reports_the_rest(
    components: Components, tmp_path: Path
) -> None:
    full = write_video(tmp_path / "full.avi", seconds=10.0, fps=10.0, fourcc="MJPG")
    data = full.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    summary = run_ingest(components, open_source(cut), OPTIONS)
    assert (summary.ingested, summary.rejected) == (3, 1)  # t=0, 2, 4 survive the cut
    assert summary.rejects[0].stage == "video"
    assert "stream ends at frame" in summary.rejects[0].reason
    mp4 = write_video(tmp_path / "full.mp4", seconds=4.0, fps=10.0).read_bytes()
    (tmp_path / "cut.mp4").write_bytes(mp4[: len(mp4) // 2])  # no index: cannot be opened
    broken = run_ingest(components, open_source(tmp_path / "cut.mp4"), OPTIONS)
    assert (broken.ingested, broken.rejected) == (0, 1)


def test_frame_sampling_math(tmp_path: Path) -> None:
    assert [format_ts(t) for t in (0, 2.0, 2.5, 4.0041, 1 / 3, 59.9999)] == [
        "0", "2", "2.5", "4.004", "0.333", "60"
    ]
    video = write_video(tmp_path / "v.mp4", seconds=3.0, fps=29.97)
    reader = VideoReader(str(video), every_s=1.0)
    try:
        planned = reader.planned(file_hash(video))
        assert [s.index for s in planned] == [0, 30, 60]
        assert [s.ts_text for s in planned] == ["0", "1.001", "2.002"]
        decoded = [f.sample for f in reader.frames(file_hash(video), set())]
        assert decoded == planned
    finally:
        reader.close()
    fast = VideoReader(str(video), every_s=0.01)  # shorter than a frame: every frame, once
    try:
        assert [s.index for s in fast.planned("h")] == list(range(fast.frame_count))
    finally:
        fast.close()


def test_frames_over_the_pixel_cap_reject_the_video(components: Components, tmp_path: Path) -> None:
    video = write_video(tmp_path / "big.mp4", seconds=1.0, fps=4.0, size=(120, 160))
    summary = run_ingest(components, open_source(video), IngestOptions(max_pixels=100 * 100))
    assert (summary.ingested, summary.rejected) == (0, 1)
    assert "160x120" in summary.rejects[0].reason
