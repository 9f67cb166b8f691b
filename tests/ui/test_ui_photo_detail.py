"""The UI on a folder ingest (#16.6): a hit without a caption is titled by its file name, and the
detail view shows the photo's file and EXIF fields (Chromium against a real ``mmrag serve``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from PIL import Image
from selenium.webdriver.common.by import By

from tests.support.images import make_test_image
from tests.ui.ui_support import (
    Gallery,
    Server,
    demo_checkpoint,
    open_page,
    result_cards,
    search_idle,
    serving,
    wait_collection,
    wait_for,
    wait_thumbnails,
)

NAMES = ("beach.jpg", "harbour.jpg", "market.jpg")


def _exif(index: int) -> bytes:
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "FUJIFILM", "X-T5"
    exif.get_ifd(0x8769)[0x9003] = f"2024:06:0{index + 1} 10:00:00"
    exif.get_ifd(0x8825).update({1: "N", 2: (43.0, 17.0, 30.0), 3: "E", 4: (5.0, 22.0, 12.0)})
    return exif.tobytes()


@pytest.fixture(scope="module")
def photo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``mmrag serve`` over three captionless EXIF photos ingested from a folder."""
    from ingest.job import IngestOptions, run_ingest
    from ingest.sources import open_source
    from retrieval.components import build_components
    from retrieval.config import Settings

    root = tmp_path_factory.mktemp("photos")
    folder = root / "library" / "2024"
    folder.mkdir(parents=True)
    for index, name in enumerate(NAMES):
        image = Image.fromarray(make_test_image(40 + index, 96, 128))
        image.save(folder / name, exif=_exif(index), quality=92)
    checkpoint = demo_checkpoint()
    settings = Settings.model_validate({
        "uri": str(root / "photos.db"), "collection": "photos", "model": "mmrag-demo",
        "pretrained": None, "checkpoint": checkpoint, "device": "cpu",
    })
    components = build_components(settings)
    try:
        summary = run_ingest(components, open_source(root / "library"), IngestOptions())
        assert summary.ingested == len(NAMES), summary.rejects
    finally:
        components.close()
    gallery = Gallery(root=root, db=root / "photos.db", collection="photos",
                      checkpoint=checkpoint, count=len(NAMES), query_image=folder / NAMES[0])
    with serving(gallery, root / "serve.log") as server:
        yield server


def test_captionless_photos_show_their_file_name_and_exif_details(
    page: Any, photo_server: Server
) -> None:
    open_page(page, photo_server)
    wait_collection(page, len(NAMES))
    query = page.find_element(By.ID, "query")
    query.send_keys("a photo")
    page.find_element(By.ID, "search-submit").click()
    wait_for(page, search_idle, 30, "the search to finish")
    wait_thumbnails(page, "#results img", len(NAMES))
    cards = result_cards(page)
    assert sorted(card["caption"] for card in cards) == sorted(NAMES)
    assert all(card["alt"] == f"{card['caption']} (no caption)" for card in cards)

    page.find_element(By.CSS_SELECTOR, "#results .card").click()
    dialog = page.find_element(By.ID, "detail")
    wait_for(page, lambda d: dialog.get_attribute("open") is not None, 5, "the detail view")
    assert page.find_element(By.ID, "detail-title").text == cards[0]["caption"]
    terms = [dt.text for dt in dialog.find_elements(By.CSS_SELECTOR, "dt")]
    values = dict(zip(terms, [dd.text for dd in dialog.find_elements(By.CSS_SELECTOR, "dd")],
                      strict=True))
    assert values["file"] == f"2024/{cards[0]['caption']}"
    assert values["camera"] == "FUJIFILM X-T5"
    assert values["taken"].startswith("2024-06-0")
    assert values["dimensions"] == "128 × 96 px"
    assert values["location"] == "43.29167, 5.37000"
    assert values["file size"].endswith("KB")
    assert "modified" in values
    assert not {"camera_make", "gps_lat", "width", "name"} & set(terms)  # shown once, labelled
