"""Decoding in worker processes (MMRAG_DECODE_WORKERS) and JPEGs decoded by torchvision on the
model's device (MMRAG_JPEG_DECODER=device, here on CPU) give the thread path's rows: the same
ids, sources and fields, the same vectors (exactly for the processes), the same rejects."""

from __future__ import annotations

import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from ingest import IngestOptions, open_source, run_ingest
from ingest.decode_pool import DecodePool, resolve_decode_workers
from ingest.rejects import RejectsFile
from retrieval.components import build_components
from retrieval.decode_worker import decode_and_prepare
from retrieval.embedders.preprocess import PreprocessConfig, preprocess_image
from retrieval.errors import ConfigError
from tests.support.images import make_test_image, write_image_files
from tests.support.tiny_model import tiny_model_settings

# torchvision 0.29 warns that its decoders move to TorchCodec (pytest resets mmrag's filter)
pytestmark = pytest.mark.filterwarnings("ignore:The image decoding:DeprecationWarning")


def _folder(root: Path) -> Path:
    """JPEGs of several sizes, a PNG, a rotated photo, a grayscale and a CMYK JPEG, a truncated
    JPEG (header intact), and two files that are no image."""
    write_image_files(root, 6, sizes=((96, 128), (480, 640), (80, 80), (150, 220)))
    write_image_files(root, 2, ext=".png", start=20)
    rgb = make_test_image(40, 90, 120)
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned a quarter clockwise
    Image.fromarray(rgb).save(root / "rotated.jpg", exif=exif.tobytes())
    Image.fromarray(rgb[:, :, 0]).save(root / "gray.jpg")
    Image.fromarray(rgb).convert("CMYK").save(root / "cmyk.jpg")
    whole = (root / "img_0001.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(whole[: len(whole) * 2 // 3])
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (root / "text.png").write_bytes(b"plain text, not a png")
    return root


def _ingest(files: tuple[Path, Path], tmp: Path, name: str, folder: Path, **changes: str):
    """Ingest the folder into its own collection; (summary, rows by id, rejects)."""
    settings = tiny_model_settings(files, tmp / "decode.db", name, batch_size=4, **changes)
    components = build_components(settings)
    rejects = RejectsFile(tmp / f"{name}.jsonl")
    try:
        summary = run_ingest(components, open_source(folder),
                             IngestOptions(batch_size=4, workers=2, fetch_workers=2),
                             rejects=rejects)
        rows = {r.id: r for batch in components.store.iterate(with_vectors=True) for r in batch}
    finally:
        rejects.close()
        components.close()
    lines = (tmp / f"{name}.jsonl").read_text().splitlines()
    found = sorted((json.loads(x)["source"], json.loads(x)["stage"], json.loads(x)["reason"])
                   for x in lines)
    return summary, rows, found


def test_processes_and_device_jpegs_give_the_thread_paths_rows(
    tmp_path: Path, tiny_model_files: tuple[Path, Path]
) -> None:
    folder = _folder(tmp_path / "data")
    base, rows, rejects = _ingest(tiny_model_files, tmp_path, "threads", folder,
                                  decode_workers="0", jpeg_decoder="cpu")
    assert (base.ingested, base.rejected) == (11, 3), base.as_dict()
    assert [(Path(s).name, stage) for s, stage, _ in rejects] == [
        ("broken.jpg", "decode"), ("text.png", "decode"), ("truncated.jpg", "decode")], rejects
    for name, changes in (("processes", {"decode_workers": "2", "jpeg_decoder": "cpu"}),
                          ("device", {"decode_workers": "0", "jpeg_decoder": "device"})):
        summary, theirs, their_rejects = _ingest(tiny_model_files, tmp_path, name, folder,
                                                 **changes)
        assert summary.as_dict() | {"elapsed_s": 0, "throughput_per_s": 0, "rejects_file": ""} \
            == base.as_dict() | {"elapsed_s": 0, "throughput_per_s": 0, "rejects_file": ""}
        assert their_rejects == rejects, name
        assert theirs.keys() == rows.keys(), name
        for row_id, row in rows.items():
            other = theirs[row_id]
            assert (other.source, dict(other.metadata)) == (row.source, dict(row.metadata))
            if name == "processes":  # the very functions, in another process
                assert np.array_equal(other.vector, row.vector), row.source
            else:  # libjpeg through torchvision and torch's float resize: within a level
                cosine = float(np.dot(other.vector, row.vector))
                assert cosine >= 0.999, (row.source, cosine)


def test_pool_decodes_into_shared_memory_like_this_thread() -> None:
    cfg = PreprocessConfig(size=(64, 64))
    images = [make_test_image(i, 120 + 16 * i, 160) for i in range(6)]
    datas = [cv2.imencode(".jpg", cv2.cvtColor(x, cv2.COLOR_RGB2BGR))[1].tobytes()
             for x in images]
    photo = io.BytesIO()
    Image.fromarray(images[0]).save(photo, format="JPEG", exif=_exif_orientation(8))
    datas.append(photo.getvalue())
    with DecodePool(1, cfg, 10_000_000, cfg.draft_min_side, slots=2) as pool:
        got = [pool.decode(data, True) for data in [*datas, b"GIF89a broken"]]
    for data, decoded in zip(datas, got, strict=False):
        expected = decode_and_prepare(
            data, lambda rgb: preprocess_image(rgb, cfg), 10_000_000, cfg.draft_min_side, True)
        assert np.array_equal(decoded.prepared, expected.prepared)
        assert decoded.fields == expected.fields and decoded.error is None
    assert got[-1].prepared is None
    assert got[-1].error == decode_and_prepare(
        b"GIF89a broken", lambda rgb: rgb, 10_000_000, None, False).error


def _exif_orientation(value: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = value
    return exif.tobytes()


def test_decode_workers_setting() -> None:
    assert resolve_decode_workers("auto", "cpu", cores=16) == 0  # a CPU model needs the cores
    assert resolve_decode_workers("auto", "cuda", cores=16) == 14
    assert resolve_decode_workers("auto", "cuda:1", cores=2) == 1
    assert resolve_decode_workers(" 3 ", "cpu") == 3
    assert resolve_decode_workers("0", "cuda") == 0
    for bad in ("many", "-1"):
        with pytest.raises(ConfigError, match="MMRAG_DECODE_WORKERS"):
            resolve_decode_workers(bad, "cpu")
