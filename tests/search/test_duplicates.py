"""Near-duplicates (#18.4) on Milvus Lite with the shipped mmrag-demo model: generated copies
(JPEG quality 30, half size, 5% crop, 2-degree rotation) planted among 40 distinct scenes, one
per colour-shape pair, ingested by `mmrag ingest` as users run it.

Every planted group must be found whole, and no distinct scene may join any group, through
`mmrag duplicates` and `GET /duplicates` alike (the same groups, in the same order, paged).

The threshold is measured, not guessed: on this data (seed 5) the weakest link inside a planted
group scores 0.960 and the closest two images of different groups 0.915 (see
``test_measured_gap``), so THRESHOLD sits between them. The demo model is small: on other seeds
the two ranges can overlap (a scene whose shape touches the border loses much under a crop).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from mmrag.cli import main
from retrieval.api import create_app
from retrieval.config import Settings
from retrieval.demo.synthetic import combinations, render_scene
from retrieval.duplicates import find_groups
from retrieval.stores import open_store
from tests.api.helpers import wait_ready

SEED = 5
SIZE = 128
PLANTED_EVERY = 4  # originals 0, 4, 8, ... get four copies each
THRESHOLD = 0.94
JPEG_PARAMS = [cv2.IMWRITE_JPEG_QUALITY, 30]


def jpeg_30(rgb: np.ndarray) -> tuple[str, np.ndarray]:
    return "q30.jpg", rgb  # compressed when written (JPEG_PARAMS)


def half_size(rgb: np.ndarray) -> tuple[str, np.ndarray]:
    h, w = rgb.shape[:2]
    return "half.png", cv2.resize(rgb, (w // 2, h // 2), interpolation=cv2.INTER_AREA)


def crop_5(rgb: np.ndarray) -> tuple[str, np.ndarray]:
    h, w = rgb.shape[:2]
    dy, dx = round(h * 0.025), round(w * 0.025)  # 5% of each side's length, split in two
    return "crop.png", np.ascontiguousarray(rgb[dy : h - dy, dx : w - dx])


def rotate_2(rgb: np.ndarray) -> tuple[str, np.ndarray]:
    h, w = rgb.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), 2.0, 1.0)
    return "rot.png", cv2.warpAffine(rgb, matrix, (w, h), borderMode=cv2.BORDER_REFLECT)


EDITS = (jpeg_30, half_size, crop_5, rotate_2)


@dataclass(frozen=True)
class Planted:
    settings: Settings
    groups: list[frozenset[str]]  # file names of each planted group (original and copies)
    distinct: frozenset[str]  # originals without copies


def write_gallery(folder: Path) -> tuple[list[frozenset[str]], frozenset[str]]:
    """40 distinct scenes, 10 of them with four edited copies each."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(SEED)
    groups: list[frozenset[str]] = []
    distinct: set[str] = set()
    for index, (colour, shape) in enumerate(combinations(True)):
        rgb = render_scene(colour, shape, rng, SIZE)
        name = f"{index:02d}_{colour}_{shape}.png"
        assert cv2.imwrite(str(folder / name), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        if index % PLANTED_EVERY:
            distinct.add(name)
            continue
        names = {name}
        for edit in EDITS:
            suffix, copy = edit(rgb)
            copy_name = f"{index:02d}_copy_{suffix}"
            params = JPEG_PARAMS if suffix.endswith(".jpg") else []
            bgr = cv2.cvtColor(copy, cv2.COLOR_RGB2BGR)
            assert cv2.imwrite(str(folder / copy_name), bgr, params)
            names.add(copy_name)
        groups.append(frozenset(names))
    return groups, frozenset(distinct)


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Planted:
    root = tmp_path_factory.mktemp("duplicates")
    groups, distinct = write_gallery(root / "gallery")
    settings = Settings(uri=str(root / "dups.db"), collection="dups", model="mmrag-demo",
                        pretrained=None, device="cpu", batch_size=32,
                        thumbnail_dir=root / "thumbs")
    assert main(["ingest", str(root / "gallery"), "--uri", settings.uri, "--collection",
                 "dups", "--model", "mmrag-demo", "--device", "cpu", "--quiet"]) == 0
    return Planted(settings, groups, distinct)


def flags(planted: Planted) -> list[str]:
    return ["--uri", planted.settings.uri, "--collection", "dups"]


def names(members: list[dict]) -> frozenset[str]:
    return frozenset(Path(m["source"]).name for m in members)


def test_measured_gap(planted: Planted) -> None:
    """The numbers THRESHOLD was chosen from: every planted group holds together above it,
    and nothing links across groups at it."""
    with open_store(planted.settings.uri, "dups") as store:
        rows = [r for batch in store.iterate() for r in batch]
    group_of = {}
    for number, group in enumerate(planted.groups):
        group_of.update({name: number for name in group})
    labels = np.array([group_of.get(Path(r.source).name, -1 - i) for i, r in enumerate(rows)])
    vectors = np.stack([r.vector for r in rows])
    scores = vectors @ vectors.T
    same = labels[:, None] == labels[None, :]
    np.fill_diagonal(same, False)
    weakest_link = min(scores[i][same[i]].max() for i in range(len(rows)) if same[i].any())
    closest_other = scores[labels[:, None] != labels[None, :]].max()
    print(f"weakest in-group link {weakest_link:.4f}, closest across groups {closest_other:.4f}")
    assert closest_other < THRESHOLD < weakest_link


def test_cli_finds_every_planted_group_and_nothing_else(
    planted: Planted, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["duplicates", "--threshold", str(THRESHOLD), "--limit", "100", "--json",
                 *flags(planted)]) == 0
    page = json.loads(capsys.readouterr().out)
    found = [names(g["members"]) for g in page["groups"]]
    assert sorted(found, key=sorted) == sorted(planted.groups, key=sorted)
    assert page["total_groups"] == len(planted.groups) == 10
    assert page["scanned"] == 40 + 4 * 10
    assert all(THRESHOLD <= g["min_score"] <= g["max_score"] <= 1.0001 for g in page["groups"])
    # paging: the same order, a page at a time; the text output says where the rest is
    assert main(["duplicates", "--threshold", str(THRESHOLD), "--limit", "3", "--page", "2",
                 "--json", *flags(planted)]) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["groups"] == page["groups"][3:6]
    assert main(["duplicates", "--threshold", str(THRESHOLD), "--limit", "3",
                 *flags(planted)]) == 0
    text = capsys.readouterr().out
    assert "group 1: 5 images" in text and "groups 1-3 of 10" in text and "--page 2" in text


@pytest.mark.parametrize("threshold", ["0", "-0.5", "1.01", "nan"])
def test_cli_refuses_a_threshold_outside_0_1(
    planted: Planted, capsys: pytest.CaptureFixture[str], threshold: str
) -> None:
    assert main(["duplicates", "--threshold", threshold, *flags(planted)]) == 2
    assert "threshold must be within (0, 1]" in capsys.readouterr().err


@pytest.fixture(scope="module")
def client(planted: Planted) -> Iterator[TestClient]:
    with TestClient(create_app(planted.settings)) as test_client:
        wait_ready(test_client)
        yield test_client


def test_api_pages_the_same_groups(planted: Planted, client: TestClient) -> None:
    answer = client.get("/duplicates", params={"threshold": THRESHOLD, "page_size": 4})
    assert answer.status_code == 200, answer.text
    first = answer.json()
    assert (first["total_groups"], first["page"], len(first["groups"])) == (10, 1, 4)
    pages = [first] + [
        client.get("/duplicates", params={"threshold": THRESHOLD, "page_size": 4,
                                          "page": p}).json()
        for p in (2, 3, 4)
    ]
    found = [names(g["members"]) for page in pages for g in page["groups"]]
    assert sorted(found, key=sorted) == sorted(planted.groups, key=sorted)
    assert pages[3]["groups"] == []
    member = first["groups"][0]["members"][0]
    assert client.get(member["thumbnail_url"]).status_code == 200
    # exactly identical vectors only: no group (no image was stored twice)
    assert client.get("/duplicates", params={"threshold": 1}).json()["total_groups"] == 0


@pytest.mark.parametrize(
    "params", [{"threshold": 0}, {"threshold": 1.5}, {"threshold": -1}, {"page": 0},
               {"page_size": 101}],
)
def test_api_refuses_bad_parameters(client: TestClient, params: dict) -> None:
    answer = client.get("/duplicates", params=params)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["type"] == "invalid_request"


def test_each_image_is_searched_once(planted: Planted) -> None:
    """The scan reads the collection in batches and asks one range search per batch."""
    with open_store(planted.settings.uri, "dups") as store:
        calls: list[int] = []
        search = store.range_search

        def counted(vectors: np.ndarray, radius: float, **kw: object) -> list:
            calls.append(len(vectors))
            return search(vectors, radius, **kw)  # type: ignore[arg-type]

        store.range_search = counted  # type: ignore[method-assign]
        groups, scanned = find_groups(store, THRESHOLD, batch_size=16)
    assert scanned == 80 and sum(calls) == 80 and len(calls) == 5
    assert len(groups) == 10
