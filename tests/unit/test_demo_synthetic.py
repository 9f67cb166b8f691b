"""The synthetic scene generator: seeded, split, true RGB, captions and manifests."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from retrieval.demo.synthetic import (
    COLOURS,
    HELD_OUT,
    SHAPES,
    HeldOut,
    caption_for,
    combinations,
    draw_scene,
    generate_dataset,
    render_scene,
    write_dataset,
)


def test_same_seed_same_data_and_other_seed_differs() -> None:
    first = generate_dataset(12, seed=3, size=64, vary_captions=True)
    again = generate_dataset(12, seed=3, size=64, vary_captions=True)
    other = generate_dataset(12, seed=4, size=64, vary_captions=True)
    for a, b in zip(first, again, strict=True):
        assert np.array_equal(a.image, b.image)
        assert a.caption == b.caption and a.scene == b.scene
    assert any(not np.array_equal(a.image, c.image) for a, c in zip(first, other, strict=True))


def test_held_out_list_is_six_valid_pairs_whose_parts_are_still_trained() -> None:
    assert len(HELD_OUT) == 6
    trained = combinations(include_held_out=False)
    assert len(trained) == 34 and not set(trained) & HELD_OUT
    assert {c for c, _ in trained} == set(COLOURS)
    assert {s for _, s in trained} == set(SHAPES)
    assert set(combinations("only")) == HELD_OUT
    assert len(combinations(True)) == len(COLOURS) * len(SHAPES) == 40


@pytest.mark.parametrize(("mode", "expect_held"), [(False, False), ("only", True)])
def test_split_is_respected(mode: HeldOut, expect_held: bool) -> None:
    samples = generate_dataset(60, seed=1, size=64, include_held_out=mode)
    assert all(s.scene.held_out is expect_held for s in samples)


def test_all_combinations_are_balanced() -> None:
    samples = generate_dataset(80, seed=2, size=48, include_held_out=True)
    counts = Counter(s.scene.combo for s in samples)
    assert set(counts) == set(combinations(True))
    assert set(counts.values()) == {2}


@pytest.mark.parametrize("colour", list(COLOURS))
def test_shape_pixels_carry_the_named_rgb_colour(colour: str) -> None:
    image, mask = draw_scene(colour, "square", np.random.default_rng(5), size=96)
    assert image.shape == (96, 96, 3) and image.dtype == np.uint8
    inside = image[mask > 0.99].astype(np.float64).mean(axis=0)
    assert np.abs(inside - np.array(COLOURS[colour])).max() < 25


def test_red_is_red_and_blue_is_blue_in_channel_order() -> None:
    red, red_mask = draw_scene("red", "circle", np.random.default_rng(0))
    blue, blue_mask = draw_scene("blue", "circle", np.random.default_rng(0))
    r, _, b = red[red_mask > 0.99].mean(axis=0)
    assert r > 170 and b < 80
    r, _, b = blue[blue_mask > 0.99].mean(axis=0)
    assert b > 170 and r < 80


def test_captions_name_the_attributes() -> None:
    for sample in generate_dataset(40, seed=6, size=48, include_held_out=True, vary_captions=True):
        scene = sample.scene
        assert sample.caption == scene.caption
        assert f"{scene.colour} {scene.shape}" in sample.caption
    core = generate_dataset(40, seed=6, size=48, include_held_out=True)
    assert all(s.caption == caption_for(*s.scene.combo) for s in core)
    assert caption_for("red", "circle") == "a red circle"
    assert caption_for("orange", "star") == "an orange star"


def test_render_sizes_and_bad_names() -> None:
    rng = np.random.default_rng(0)
    for size in (48, 64, 128):
        assert render_scene("green", "star", rng, size).shape == (size, size, 3)
    with pytest.raises(ValueError, match="colour"):
        render_scene("teal", "circle", rng)
    with pytest.raises(ValueError, match="shape"):
        render_scene("red", "hexagon", rng)


def test_write_dataset_manifest_and_rgb_files(tmp_path: Path) -> None:
    manifest = write_dataset(tmp_path / "demo", n=12, seed=9, size=64)
    assert manifest == tmp_path / "demo" / "manifest.csv"
    with manifest.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["path", "caption", "colour", "shape"]
    expected = generate_dataset(12, seed=9, size=64, include_held_out=True)
    assert len(rows) == len(expected)
    for row, sample in zip(rows, expected, strict=True):
        assert row["caption"] == sample.caption
        assert (row["colour"], row["shape"]) == sample.scene.combo
        bgr = cv2.imread(str(manifest.parent / row["path"]), cv2.IMREAD_COLOR)
        assert bgr is not None
        assert np.array_equal(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), sample.image)


def test_write_dataset_jpeg_keeps_channel_order(tmp_path: Path) -> None:
    manifest = write_dataset(tmp_path, n=40, seed=1, size=96, fmt="jpg")
    with manifest.open(newline="", encoding="utf-8") as handle:
        row = next(r for r in csv.DictReader(handle) if r["colour"] == "red")
    assert row["path"].endswith(".jpg")
    rgb = np.asarray(Image.open(tmp_path / row["path"]).convert("RGB"))
    reds = (rgb[..., 0] > 170) & (rgb[..., 2] < 80) & (rgb[..., 1] < 80)
    assert reds.sum() > 100
