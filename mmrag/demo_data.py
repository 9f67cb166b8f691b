"""The `mmrag demo` folder: seeded synthetic images, a manifest, query images and a queries file,
and a product catalogue (``catalogue/``: pictures, captions with codes and names the pictures
cannot show, and visual, code and mixed queries) for keyword and hybrid search.

The folder holds a stamp (``mmrag-demo.json``) recording what was generated, so a rerun reuses
the files, and a folder without the stamp is never written into (it may be the user's).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from retrieval.demo.synthetic import (
    DEFAULT_FILE_SIZE,
    caption_for,
    catalogue_queries,
    combinations,
    render_scene,
    write_catalogue,
)
from retrieval.demo.synthetic import write_dataset as write_gallery
from retrieval.errors import ConfigError

STAMP_NAME = "mmrag-demo.json"
DB_NAME = "demo.db"
QUERIES_NAME = "queries.jsonl"
QUERY_IMAGE_DIR = "queries"
STAMP_VERSION = 2  # 2: with the catalogue
CATALOGUE_DIR = "catalogue"
CATALOGUE_COUNT = 200
CATALOGUE_SEED = 9
CATALOGUE_QUERIES_PER_GROUP = 40
GALLERY_SEED = 7
QUERY_IMAGE_SEED = 8
QUERY_IMAGE_COMBOS = (
    ("purple", "star"),
    ("red", "circle"),
    ("green", "square"),
    ("blue", "cross"),
    ("yellow", "triangle"),
    ("orange", "star"),
    ("white", "circle"),
    ("black", "square"),
    ("yellow", "circle"),  # held out of training
    ("blue", "triangle"),  # held out of training
)


@dataclass(frozen=True)
class DemoFolder:
    """The demo folder's files, and what preparing it did."""

    root: Path
    count: int
    reused: bool
    regenerated: bool  # the folder held another generation (its collection must be rebuilt)

    @property
    def manifest(self) -> Path:
        """The gallery manifest (path, caption, colour, shape)."""
        return self.root / "manifest.csv"

    @property
    def queries(self) -> Path:
        """The labelled queries file for `mmrag eval`."""
        return self.root / QUERIES_NAME

    @property
    def db(self) -> Path:
        """The Milvus Lite file of the demo collection."""
        return self.root / DB_NAME

    @property
    def catalogue_manifest(self) -> Path:
        """The catalogue manifest (path, caption, code, name, colour, shape)."""
        return self.root / CATALOGUE_DIR / "manifest.csv"

    @property
    def catalogue_queries(self) -> Path:
        """The catalogue's visual, code and mixed queries for `mmrag eval --modes ...`."""
        return self.root / CATALOGUE_DIR / QUERIES_NAME

    def query_image(self, colour: str, shape: str) -> Path:
        """A query image (not in the gallery) of a combination from QUERY_IMAGE_COMBOS."""
        return self.root / QUERY_IMAGE_DIR / f"{colour}-{shape}.png"


def stamp_for(count: int) -> dict[str, int]:
    """What a folder generated for ``count`` images records."""
    return {
        "version": STAMP_VERSION,
        "count": count,
        "seed": GALLERY_SEED,
        "query_seed": QUERY_IMAGE_SEED,
        "size": DEFAULT_FILE_SIZE,
        "catalogue": CATALOGUE_COUNT,
        "catalogue_seed": CATALOGUE_SEED,
    }


def prepare_folder(root: Path, count: int) -> DemoFolder:
    """Reuse the folder's files when they match ``count``, else (re)generate them."""
    if count < 1:
        raise ConfigError(f"--count must be at least 1, got {count}")
    stamp_path = root / STAMP_NAME
    old = _read_stamp(stamp_path)
    if root.exists() and not root.is_dir():
        raise ConfigError(f"{root} is a file, not a folder; pick another --dir")
    if old is None and root.is_dir() and any(root.iterdir()):
        raise ConfigError(
            f"{root} is not empty and is not an mmrag demo folder (no {STAMP_NAME}); "
            "pick another --dir"
        )
    wanted = stamp_for(count)
    folder = DemoFolder(root, count, reused=False, regenerated=False)
    if old == wanted and _complete(folder):
        return DemoFolder(root, count, reused=True, regenerated=False)
    root.mkdir(parents=True, exist_ok=True)
    stamp_path.write_text(json.dumps({"version": STAMP_VERSION, "state": "generating"}) + "\n")
    write_gallery(root, count, seed=GALLERY_SEED, size=DEFAULT_FILE_SIZE, include_held_out=True)
    write_query_images(folder)
    write_queries(folder)
    write_demo_catalogue(folder)
    stamp_path.write_text(json.dumps(wanted, indent=2) + "\n", encoding="utf-8")  # last: complete
    return DemoFolder(root, count, reused=False, regenerated=old is not None)


def _read_stamp(path: Path) -> dict[str, object] | None:
    """The stamp's content, or None without a readable stamp."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return value if isinstance(value, dict) else None


def _complete(folder: DemoFolder) -> bool:
    """Whether the manifest, every image it names, the queries and the query images exist."""
    if not folder.manifest.is_file() or not folder.queries.is_file():
        return False
    if not folder.catalogue_manifest.is_file() or not folder.catalogue_queries.is_file():
        return False
    with folder.manifest.open(newline="", encoding="utf-8") as handle:
        paths = [row.get("path", "") for row in csv.DictReader(handle)]
    if len(paths) != folder.count:
        return False
    images = [folder.root / p for p in paths]
    images += [folder.query_image(c, s) for c, s in QUERY_IMAGE_COMBOS]
    return all(path.is_file() for path in images)


def write_query_images(folder: DemoFolder) -> None:
    """Render one fresh scene per QUERY_IMAGE_COMBOS entry (seeded, never in the gallery)."""
    rng = np.random.default_rng(QUERY_IMAGE_SEED)
    (folder.root / QUERY_IMAGE_DIR).mkdir(parents=True, exist_ok=True)
    for colour, shape in QUERY_IMAGE_COMBOS:
        path = folder.query_image(colour, shape)
        rgb = render_scene(colour, shape, rng, DEFAULT_FILE_SIZE)
        if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
            raise ConfigError(f"could not write {path}")


def write_queries(folder: DemoFolder) -> None:
    """A queries file: every colour-shape caption, and every query image, relevant by metadata."""
    lines = []
    for colour, shape in combinations(include_held_out=True):
        lines.append({
            "id": f"text-{colour}-{shape}",
            "query": caption_for(colour, shape),
            "relevant_where": {"colour": colour, "shape": shape},
        })
    for colour, shape in QUERY_IMAGE_COMBOS:
        lines.append({
            "id": f"image-{colour}-{shape}",
            "image": f"{QUERY_IMAGE_DIR}/{colour}-{shape}.png",
            "relevant_where": {"colour": colour, "shape": shape},
        })
    text = "".join(json.dumps(line) + "\n" for line in lines)
    folder.queries.write_text(text, encoding="utf-8")


def write_demo_catalogue(folder: DemoFolder) -> None:
    """The catalogue's pictures, manifest and queries (see ``retrieval.demo.synthetic``)."""
    root = folder.catalogue_manifest.parent
    products = write_catalogue(root, CATALOGUE_COUNT, seed=CATALOGUE_SEED, size=DEFAULT_FILE_SIZE)
    lines = catalogue_queries(products, CATALOGUE_QUERIES_PER_GROUP, seed=CATALOGUE_SEED)
    text = "".join(json.dumps(line) + "\n" for line in lines)
    folder.catalogue_queries.write_text(text, encoding="utf-8")
