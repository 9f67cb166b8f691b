"""Draft (DCT-scaled) JPEG decoding: faster on big photos, same image as the model sees it."""

from __future__ import annotations

import io
import warnings

import cv2
import numpy as np
import pytest
from PIL import Image

from retrieval.demo.synthetic import combinations, render_scene
from retrieval.embedders import create_embedder
from retrieval.embedders.preprocess import PreprocessConfig, preprocess_image
from retrieval.imaging import decode_image, draft_scale


def _jpeg(rgb: np.ndarray, exif_orientation: int | None = None) -> bytes:
    image = Image.fromarray(rgb)
    out = io.BytesIO()
    if exif_orientation is None:
        image.save(out, "JPEG", quality=90)
    else:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        image.save(out, "JPEG", quality=90, exif=exif)
    return out.getvalue()


def _scenes(n: int, size: int, seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    combos = combinations()
    return [render_scene(*combos[i % len(combos)], rng, size)[: size * 3 // 4] for i in range(n)]


@pytest.mark.parametrize(
    ("size", "min_side", "scale"),
    [
        ((4032, 3024), 672, 4),
        ((6000, 4000), 448, 8),
        ((2688, 2016), 672, 2),
        ((640, 480), 672, 1),
        ((640, 480), 192, 2),
        ((4032, 3024), None, 1),
        ((4032, 3024), 0, 1),
    ],
)
def test_draft_scale_keeps_the_short_side_at_or_above_the_ask(
    size: tuple[int, int], min_side: int | None, scale: int
) -> None:
    assert draft_scale(size, min_side) == scale


def test_big_jpeg_is_decoded_at_reduced_scale_with_orientation() -> None:
    rgb = _scenes(1, 2000)[0]  # 1500 x 2000 (h x w)
    assert decode_image(_jpeg(rgb), min_side=672).shape == (750, 1000, 3)  # 1/2: 750 >= 672
    assert decode_image(_jpeg(rgb), min_side=800).shape == (1500, 2000, 3)  # 750 < 800: full
    assert decode_image(_jpeg(rgb), min_side=300).shape == (375, 500, 3)  # 1/4
    rotated = decode_image(_jpeg(rgb, exif_orientation=6), min_side=300)
    assert rotated.shape == (500, 375, 3)  # EXIF orientation still applied
    full = decode_image(_jpeg(rgb, exif_orientation=6))
    small = cv2.resize(full, (375, 500), interpolation=cv2.INTER_AREA)
    assert np.abs(small.astype(int) - rotated).mean() < 2.0  # same picture, same way up


def test_png_and_alpha_ignore_the_draft_ask() -> None:
    rgb = _scenes(1, 1600)[0]
    png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes()
    assert decode_image(png, min_side=200).shape == rgb.shape


def test_draft_changes_the_model_input_by_a_fraction_of_a_level() -> None:
    cfg = PreprocessConfig()  # ViT-B-32's 224 px input; asks for >= 672 px
    assert cfg.draft_min_side == 672
    assert PreprocessConfig(reducing_gap=None).draft_min_side is None  # exact mode: no draft
    for rgb in _scenes(3, 3000):
        data = _jpeg(rgb)
        full = preprocess_image(decode_image(data), cfg)
        draft = preprocess_image(decode_image(data, min_side=cfg.draft_min_side), cfg)
        levels = np.abs(full - draft).mean() * 0.27 * 255  # back to 8-bit levels (std ~0.27)
        assert levels < 0.5, levels


def test_trained_model_embeds_draft_decoded_photos_alike() -> None:
    embedder = create_embedder("mmrag-demo", device="cpu", precision="fp32")
    assert embedder.decode_min_side == 192
    data = [_jpeg(rgb) for rgb in _scenes(6, 2400, seed=4)]
    full = embedder.embed_images([decode_image(d) for d in data])
    draft = embedder.embed_images(
        [decode_image(d, min_side=embedder.decode_min_side) for d in data]
    )
    assert float((full * draft).sum(axis=1).min()) >= 0.999


def test_a_read_only_image_is_prepared_without_a_warning() -> None:
    """A read-only array (a rotated or borrowed buffer) is copied for torch, not warned about."""
    rgb = np.zeros((100, 120, 3), dtype=np.uint8)  # under 2x the input: no pre-shrink copy
    rgb[::7] = 200
    writable = preprocess_image(rgb, PreprocessConfig(size=(64, 64), reducing_gap=2.0))
    rgb.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch's "NumPy array is not writable" UserWarning
        frozen = preprocess_image(rgb, PreprocessConfig(size=(64, 64), reducing_gap=2.0))
    assert np.array_equal(frozen, writable)
