"""The UI's "Add images" (#16.3) in Chromium against a real ``mmrag serve``: pick a folder, upload
it, follow the job's progress bar to the end, see the reject with its reason, and find the new
images in the refreshed collection and results."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import pytest
from selenium.webdriver.common.by import By

from tests.support.images import make_test_image
from tests.ui.ui_support import (
    Gallery,
    Server,
    console_errors,
    open_page,
    result_cards,
    search_idle,
    serving,
    wait_collection,
    wait_for,
)


@pytest.fixture(scope="module")
def add_server(ui_gallery: Gallery) -> Iterator[Server]:
    """``mmrag serve`` over its own copy of the demo gallery (the images added stay there)."""
    db = ui_gallery.root / "add-images.db"
    shutil.copyfile(ui_gallery.db, db)
    gallery = Gallery(root=ui_gallery.root, db=db, collection=ui_gallery.collection,
                      checkpoint=ui_gallery.checkpoint, count=ui_gallery.count,
                      query_image=ui_gallery.query_image)
    with serving(gallery, ui_gallery.root / "serve-add.log") as server:
        yield server


def _folder(root: Path) -> Path:
    """trip/ with two photos, a note, and one more photo in trip/day2/."""
    folder = root / "trip"
    (folder / "day2").mkdir(parents=True)
    for index, name in enumerate(("harbour.png", "market.png", "day2/hills.png")):
        image = cv2.cvtColor(make_test_image(600 + index, 96, 128), cv2.COLOR_RGB2BGR)
        assert cv2.imwrite(str(folder / name), image)
    (folder / "notes.txt").write_text("not a picture\n")
    return folder


def test_add_a_folder_follow_its_progress_and_see_the_rejects(
    page: Any, add_server: Server, ui_gallery: Gallery, tmp_path: Path
) -> None:
    folder = _folder(tmp_path)
    open_page(page, add_server)
    wait_collection(page, ui_gallery.count)
    # an image search for a picture the collection does not hold yet
    page.find_element(By.ID, "image-file").send_keys(str(folder / "market.png"))
    wait_for(page, lambda d: search_idle(d) and result_cards(d), 30, "the image search")
    assert result_cards(page)[0]["score"] != "score 1.000"

    page.find_element(By.ID, "add-button").click()
    dialog = page.find_element(By.ID, "add-dialog")
    wait_for(page, lambda d: dialog.get_attribute("open") is not None, 5, "the dialog")
    page.find_element(By.ID, "add-folder").send_keys(str(folder))
    selection = page.find_element(By.ID, "add-selection")
    wait_for(page, lambda d: "4 files chosen" in selection.text, 10, "the chosen files")
    page.find_element(By.ID, "add-upload").click()
    wait_for(page, lambda d: dialog.get_attribute("data-state") == "done", 90, "the job")

    progress = page.find_element(By.ID, "add-progress")
    assert progress.get_attribute("value") == progress.get_attribute("max") == "4"
    status = page.find_element(By.ID, "add-status").text
    assert "3 ingested" in status and "1 rejected" in status
    rejects = [li.text for li in page.find_elements(By.CSS_SELECTOR, "#add-rejects li")]
    assert len(rejects) == 1
    assert rejects[0].startswith("trip/notes.txt") and "not a recognised image format" in rejects[0]
    assert not page.find_element(By.ID, "add-stop").is_displayed()

    wait_collection(page, ui_gallery.count + 3)  # the header was reloaded
    wait_for(page, lambda d: search_idle(d) and result_cards(d)
             and result_cards(d)[0]["score"] == "score 1.000", 30, "the refreshed results")
    assert result_cards(page)[0]["caption"] == "market.png"  # the upload's own name
    page.find_element(By.ID, "add-close").click()
    assert console_errors(page) == []
