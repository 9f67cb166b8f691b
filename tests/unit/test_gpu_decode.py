"""The device JPEG path (retrieval/embedders/gpu_decode.py) on CPU: torch's resize, crop and
normalisation match preprocess.py's, and a batch with a bad JPEG decodes the rest one by one
and gives the bad one the CPU path's reject reason (the CUDA run is scripts/gpu_check.py)."""

from __future__ import annotations

import io
from dataclasses import replace

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from retrieval.embedders.gpu_decode import DeviceJpegDecoder, EncodedJpeg, prepare_tensors
from retrieval.embedders.preprocess import PreprocessConfig, preprocess_image
from retrieval.errors import ImageDecodeError
from retrieval.imaging import decode_image, plain_jpeg
from tests.support.images import make_test_image

# torchvision 0.29 warns that its decoders move to TorchCodec (pytest resets mmrag's filter)
pytestmark = pytest.mark.filterwarnings("ignore:The image decoding:DeprecationWarning")

LEVEL = 1.0 / 255 / min(PreprocessConfig().std)  # one 8-bit level, normalised


def _jpeg(rgb: np.ndarray, orientation: int = 1, mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    exif = Image.Exif()
    if orientation != 1:
        exif[0x0112] = orientation
    Image.fromarray(rgb).convert(mode).save(buffer, format="JPEG", quality=92,
                                            exif=exif.tobytes())
    return buffer.getvalue()


@pytest.mark.parametrize("cfg", [
    PreprocessConfig(size=(224, 224)),
    PreprocessConfig(size=(64, 96), interpolation="bilinear"),
    PreprocessConfig(size=(80, 80), resize_mode="longest", fill_color=128),
    PreprocessConfig(size=(48, 64), resize_mode="squash"),
])
@pytest.mark.parametrize("shape", [(480, 640), (300, 200), (40, 50), (900, 1200)])
def test_torch_preparation_matches_the_cpu_path(cfg: PreprocessConfig, shape: tuple) -> None:
    rgb = make_test_image(shape[0] + shape[1], *shape)
    got = prepare_tensors(torch.from_numpy(rgb).permute(2, 0, 1)[None], cfg)[0].numpy()
    exact = preprocess_image(rgb, replace(cfg, reducing_gap=None))  # Pillow's filter itself
    assert got.shape == exact.shape == cfg.input_shape
    diff = np.abs(got - exact)
    assert diff.max() <= 1.01 * LEVEL, diff.max() / LEVEL  # at most one level apart
    assert diff.mean() <= 0.01 * LEVEL, diff.mean() / LEVEL
    fast = np.abs(got - preprocess_image(rgb, cfg))  # the default: a pre-shrink over 6x
    assert fast.mean() <= 0.3 * LEVEL, fast.mean() / LEVEL


def test_a_batch_with_a_bad_jpeg_decodes_the_rest_and_rejects_it_like_the_cpu() -> None:
    cfg = PreprocessConfig(size=(64, 64))
    decoder = DeviceJpegDecoder(cfg, "cpu")
    photos = [make_test_image(i, 120, 160) for i in range(3)]
    rotated = _jpeg(photos[2], orientation=6)
    bad = b"\xff\xd8\xff\xe0 this is no jpeg at all"
    prepared = np.zeros(cfg.input_shape, dtype=np.float32)  # prepared on the CPU already
    batch = [EncodedJpeg(_jpeg(photos[0])), prepared, EncodedJpeg(bad),
             EncodedJpeg(_jpeg(photos[1], mode="L")), EncodedJpeg(rotated, 6)]
    out = decoder.prepare_batch(batch)
    assert out[1] is prepared
    with pytest.raises(ImageDecodeError) as refused:
        decode_image(bad)
    assert out[2] == str(refused.value)  # the reason a CPU ingest gives
    for index, data in ((0, batch[0].data), (3, batch[3].data), (4, rotated)):
        assert isinstance(out[index], torch.Tensor)
        expected = preprocess_image(decode_image(data), cfg)
        assert np.abs(out[index].numpy() - expected).max() <= 3 * LEVEL, index  # libjpeg builds


def test_only_plain_jpegs_go_to_the_device() -> None:
    rgb = make_test_image(7, 60, 80)
    assert plain_jpeg(_jpeg(rgb, orientation=8)) == (8, 60 * 80)
    assert plain_jpeg(_jpeg(rgb, mode="L")) == (1, 60 * 80)
    assert plain_jpeg(_jpeg(rgb, mode="CMYK")) is None  # libjpeg's conversion on the CPU
    ok, png = cv2.imencode(".png", rgb)
    assert ok and plain_jpeg(png.tobytes()) is None
    with pytest.raises(ImageDecodeError, match="over the cap"):
        plain_jpeg(_jpeg(rgb), max_pixels=100)
