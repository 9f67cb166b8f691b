"""Synthetic captioned scenes (one coloured shape on a textured background), seeded."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple

import cv2
import numpy as np

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 30, 30),
    "green": (30, 165, 45),
    "blue": (30, 70, 220),
    "yellow": (240, 215, 30),
    "purple": (140, 40, 175),
    "orange": (250, 135, 15),
    "white": (245, 245, 245),
    "black": (15, 15, 15),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross")

# Combinations never shown in training: each colour and shape still appears in other pairs,
# so the model has to compose the attributes to find these.
HELD_OUT: frozenset[tuple[str, str]] = frozenset(
    {
        ("red", "star"),
        ("green", "cross"),
        ("blue", "triangle"),
        ("yellow", "circle"),
        ("purple", "square"),
        ("black", "triangle"),
    }
)

CAPTION_TEMPLATES: tuple[str, ...] = (
    "{article} {colour} {shape}",
    "a photo of {article} {colour} {shape}",
    "a picture of {article} {colour} {shape}",
    "a drawing of {article} {colour} {shape}",
    "{colour} {shape}",
)

DEFAULT_FILE_SIZE = 96
HeldOut = bool | Literal["only"]


@dataclass(frozen=True)
class Scene:
    """What one generated image shows, and the caption that names it."""

    colour: str
    shape: str
    caption: str

    @property
    def combo(self) -> tuple[str, str]:
        """The (colour, shape) pair."""
        return (self.colour, self.shape)

    @property
    def held_out(self) -> bool:
        """Whether this pair is one of the combinations kept out of training."""
        return self.combo in HELD_OUT


class Sample(NamedTuple):
    """One generated example: an RGB uint8 image, its caption and its attributes."""

    image: np.ndarray
    caption: str
    scene: Scene


def caption_for(colour: str, shape: str, template: int = 0) -> str:
    """The caption of a pair; template 0 is the core query form, e.g. "a red circle"."""
    article = "an" if colour[0] in "aeiou" else "a"
    return CAPTION_TEMPLATES[template].format(article=article, colour=colour, shape=shape)


def combinations(include_held_out: HeldOut = False) -> list[tuple[str, str]]:
    """All (colour, shape) pairs: trained only (False), all (True) or held-out only ("only")."""
    pairs = [(c, s) for c in COLOURS for s in SHAPES]
    if include_held_out == "only":
        return [p for p in pairs if p in HELD_OUT]
    if include_held_out:
        return pairs
    return [p for p in pairs if p not in HELD_OUT]


def _muted(rng: np.random.Generator) -> np.ndarray:
    """A low-saturation mid-grey colour that no shape colour is confused with."""
    grey = rng.uniform(75.0, 180.0)
    return np.clip(grey + rng.uniform(-22.0, 22.0, size=3), 0.0, 255.0)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A flat, gradient or blotchy-noise background as float32 RGB."""
    kind = int(rng.integers(3))
    if kind == 0:
        return np.broadcast_to(_muted(rng), (size, size, 3)).astype(np.float32)
    if kind == 1:
        angle = rng.uniform(0.0, 2.0 * math.pi)
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / max(size - 1, 1)
        t = (xx * math.cos(angle) + yy * math.sin(angle)) / math.sqrt(2.0) + 0.5
        t = np.clip(t, 0.0, 1.0)[..., None]
        return ((1.0 - t) * _muted(rng) + t * _muted(rng)).astype(np.float32)
    cells = int(rng.integers(3, 9))
    blotches = rng.uniform(-24.0, 24.0, size=(cells, cells, 3)).astype(np.float32)
    field = cv2.resize(blotches, (size, size), interpolation=cv2.INTER_CUBIC)
    return np.clip(field + _muted(rng).astype(np.float32), 0.0, 255.0)


def _polygon(shape: str, cx: float, cy: float, r: float, angle: float) -> np.ndarray:
    """Vertices (N, 2) of a non-circle shape centred at (cx, cy) with outer radius r."""
    if shape == "square":
        radii, count = [r * 0.92], 4
        phase = math.pi / 4
    elif shape == "triangle":
        radii, count = [r], 3
        phase = -math.pi / 2
    elif shape == "star":
        radii, count = [r, r * 0.42], 10
        phase = -math.pi / 2
    elif shape == "cross":
        a, b = r * 0.95, r * 0.32
        local = np.array(
            [(-b, -a), (b, -a), (b, -b), (a, -b), (a, b), (b, b),
             (b, a), (-b, a), (-b, b), (-a, b), (-a, -b), (-b, -b)],
            dtype=np.float64,
        )
        rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
        return local @ rot.T + np.array([cx, cy])
    else:
        raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")
    points = []
    for i in range(count):
        theta = phase + angle + 2.0 * math.pi * i / count
        radius = radii[i % len(radii)]
        points.append((cx + radius * math.cos(theta), cy + radius * math.sin(theta)))
    return np.array(points, dtype=np.float64)


def _shape_mask(shape: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """An anti-aliased float32 coverage mask in [0, 1] of one randomly placed shape."""
    r = rng.uniform(0.21, 0.36) * size
    cx = rng.uniform(r + 1.0, size - r - 1.0)
    cy = rng.uniform(r + 1.0, size - r - 1.0)
    angle = math.radians(rng.uniform(-30.0, 30.0))
    mask = np.zeros((size, size), dtype=np.uint8)
    shift = 4
    scale = float(1 << shift)
    if shape == "circle":
        centre = (round(cx * scale), round(cy * scale))
        cv2.circle(mask, centre, round(r * 0.9 * scale), 255, -1, cv2.LINE_AA, shift)
    else:
        points = np.round(_polygon(shape, cx, cy, r, angle) * scale).astype(np.int32)
        cv2.fillPoly(mask, [points], 255, cv2.LINE_AA, shift)
    return mask.astype(np.float32) / 255.0


def draw_scene(
    colour: str, shape: str, rng: np.random.Generator, size: int = DEFAULT_FILE_SIZE
) -> tuple[np.ndarray, np.ndarray]:
    """Render one scene; returns (RGB uint8 image, float32 shape coverage mask)."""
    if colour not in COLOURS:
        raise ValueError(f"unknown colour {colour!r}; expected one of {tuple(COLOURS)}")
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")
    background = _background(rng, size)
    mask = _shape_mask(shape, size, rng)
    fill = np.clip(np.array(COLOURS[colour], dtype=np.float32) + rng.uniform(-12, 12, 3), 0, 255)
    image = background * (1.0 - mask[..., None]) + fill.astype(np.float32) * mask[..., None]
    sigma = np.float32(rng.uniform(2.0, 9.0))
    image = image + rng.standard_normal(image.shape, dtype=np.float32) * sigma
    if rng.random() < 0.3:
        image = cv2.GaussianBlur(image, (3, 3), 0)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), mask


def render_scene(
    colour: str, shape: str, rng: np.random.Generator, size: int = DEFAULT_FILE_SIZE
) -> np.ndarray:
    """Render one scene as an HxWx3 RGB uint8 array."""
    return draw_scene(colour, shape, rng, size)[0]


def generate_dataset(
    n: int,
    seed: int | Sequence[int],
    size: int = DEFAULT_FILE_SIZE,
    include_held_out: HeldOut = False,
    vary_captions: bool = False,
) -> list[Sample]:
    """n samples with the chosen combinations balanced and shuffled, deterministic from seed."""
    rng = np.random.default_rng(list(seed) if not isinstance(seed, int) else seed)
    pairs = combinations(include_held_out)
    order = rng.permutation(np.tile(np.arange(len(pairs)), -(-n // len(pairs))))[:n]
    samples = []
    for index in order:
        colour, shape = pairs[int(index)]
        template = int(rng.integers(len(CAPTION_TEMPLATES))) if vary_captions else 0
        caption = caption_for(colour, shape, template)
        image = render_scene(colour, shape, rng, size)
        samples.append(Sample(image, caption, Scene(colour, shape, caption)))
    return samples


def write_dataset(
    directory: str | Path,
    n: int,
    seed: int = 0,
    size: int = DEFAULT_FILE_SIZE,
    include_held_out: HeldOut = True,
    fmt: Literal["png", "jpg"] = "png",
) -> Path:
    """Write n images under directory/images and a manifest.csv (paths relative to it)."""
    root = Path(directory)
    (root / "images").mkdir(parents=True, exist_ok=True)
    manifest = root / "manifest.csv"
    params = [cv2.IMWRITE_JPEG_QUALITY, 92] if fmt == "jpg" else []
    with manifest.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "caption", "colour", "shape"])
        for i, (image, caption, scene) in enumerate(
            generate_dataset(n, seed, size, include_held_out)
        ):
            relative = f"images/{i:05d}_{scene.colour}_{scene.shape}.{fmt}"
            bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
            if not cv2.imwrite(str(root / relative), bgr, params):
                raise OSError(f"could not write {root / relative}")
            writer.writerow([relative, caption, scene.colour, scene.shape])
    return manifest


# ----- a product catalogue: pictures of coloured shapes, captions the pictures cannot show ---

PRODUCT_NAMES: tuple[str, ...] = (
    "Aurora", "Zephyr", "Nimbus", "Atlas", "Orion", "Juniper", "Halcyon", "Meridian",
    "Solstice", "Tundra", "Vesper", "Quill", "Larkspur", "Bastion", "Cascade", "Ember",
)
PRODUCT_KINDS: tuple[str, ...] = (
    "lamp", "chair", "vase", "clock", "kettle", "stool", "mug", "shelf", "rug", "bowl",
    "cushion", "planter", "tray",
)
CODE_LETTERS = "ABDEFHKMNPRSTVZ"
CATALOGUE_COLUMNS = ("path", "caption", "code", "name", "colour", "shape")


@dataclass(frozen=True)
class Product:
    """One catalogue item: its code and name (only in the caption) and what its picture shows."""

    code: str
    name: str
    colour: str
    shape: str

    @property
    def caption(self) -> str:
        """The catalogue line: name and code, nothing the picture shows."""
        return f"{self.name}, item {self.code}"


def catalogue_products(n: int, seed: int) -> list[Product]:
    """n products with unique codes ("R-4821") and names, every colour-shape pair balanced."""
    rng = np.random.default_rng(seed)
    pairs = combinations(include_held_out=True)
    order = rng.permutation(np.tile(np.arange(len(pairs)), -(-n // len(pairs))))[:n]
    names = [f"{a} {b}" for a in PRODUCT_NAMES for b in PRODUCT_KINDS]
    rng.shuffle(names)
    codes: set[str] = set()
    products = []
    for i, index in enumerate(order):
        code = ""
        while not code or code in codes:
            letter = CODE_LETTERS[int(rng.integers(len(CODE_LETTERS)))]
            code = f"{letter}-{rng.integers(1000, 10000)}"
        codes.add(code)
        name = names[i % len(names)] + ("" if i < len(names) else f" Mk {i // len(names) + 1}")
        colour, shape = pairs[int(index)]
        products.append(Product(code, name, colour, shape))
    return products


def write_catalogue(
    directory: str | Path, n: int, seed: int = 0, size: int = DEFAULT_FILE_SIZE
) -> list[Product]:
    """Write n product pictures under directory/images and a manifest.csv (code, name, ...).

    File names carry no code, colour or shape: only the caption and the code and name columns
    say which product a picture is.
    """
    root = Path(directory)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 1])
    products = catalogue_products(n, seed)
    with (root / "manifest.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(CATALOGUE_COLUMNS)
        for i, product in enumerate(products):
            relative = f"images/p{i:04d}.png"
            bgr = cv2.cvtColor(render_scene(product.colour, product.shape, rng, size),
                               cv2.COLOR_RGB2BGR)
            if not cv2.imwrite(str(root / relative), bgr):
                raise OSError(f"could not write {root / relative}")
            writer.writerow([relative, product.caption, product.code, product.name,
                             product.colour, product.shape])
    return products


def catalogue_queries(
    products: Sequence[Product], per_kind: int, seed: int
) -> list[dict[str, object]]:
    """Labelled queries of three groups: visual ("a red circle"), code ("R-4821") and mixed
    ("red circle R-4821"); visual ones are relevant by colour and shape, the others by code."""
    rng = np.random.default_rng([seed, 2])
    lines: list[dict[str, object]] = []
    shown = sorted({(p.colour, p.shape) for p in products})
    for colour, shape in [shown[int(i)] for i in rng.permutation(len(shown))[:per_kind]]:
        lines.append({
            "id": f"visual-{colour}-{shape}", "group": "visual",
            "query": caption_for(colour, shape),
            "relevant_where": {"colour": colour, "shape": shape},
        })
    picked = [products[int(i)] for i in rng.permutation(len(products))[: 2 * per_kind]]
    for product in picked[:per_kind]:
        lines.append({
            "id": f"code-{product.code}", "group": "code", "query": product.code,
            "relevant_where": {"code": product.code},
        })
    for product in picked[per_kind:]:
        lines.append({
            "id": f"mixed-{product.code}", "group": "mixed",
            "query": f"{product.colour} {product.shape} {product.code}",
            "relevant_where": {"code": product.code},
        })
    return lines
