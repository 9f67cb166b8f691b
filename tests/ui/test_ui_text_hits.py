"""The UI shows a text passage hit as text (#18.1), never as a broken image: Chromium against a
real ``mmrag serve`` over a folder of two demo images and one text document."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import cv2
import numpy as np
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from retrieval.demo.synthetic import render_scene
from tests.ui.ui_support import (
    Gallery,
    Server,
    console_errors,
    demo_checkpoint,
    open_page,
    search_idle,
    serving,
    wait_collection,
    wait_for,
)

PASSAGE = "A red circle on a white background, framed in the hall."
CARDS_JS = """
return [...document.querySelectorAll('#results .card')].map((card) => {
  const img = card.querySelector('img');
  const text = card.querySelector('.passage-text');
  return {caption: card.querySelector('.card-caption').textContent,
          text: text ? text.textContent : null, visible: text ? text.offsetHeight > 0 : false,
          img: img ? (img.complete && img.naturalWidth > 0) : null};
});"""


@pytest.fixture(scope="module")
def text_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    from ingest.job import IngestOptions, run_ingest
    from ingest.sources import open_source
    from retrieval.components import build_components
    from retrieval.config import Settings

    root = tmp_path_factory.mktemp("text-ui")
    folder = root / "library"
    folder.mkdir()
    rng = np.random.default_rng(21)
    for colour, shape in (("red", "circle"), ("blue", "square")):
        path = folder / f"{colour}-{shape}.png"
        assert cv2.imwrite(str(path), render_scene(colour, shape, rng)[..., ::-1])
    (folder / "hall.txt").write_text(PASSAGE + "\n", encoding="utf-8")
    checkpoint = demo_checkpoint()
    settings = Settings.model_validate({
        "uri": str(root / "text.db"), "collection": "text", "model": "mmrag-demo",
        "pretrained": None, "checkpoint": checkpoint, "device": "cpu",
    })
    components = build_components(settings)
    try:
        summary = run_ingest(components, open_source(folder), IngestOptions(workers=1))
        assert summary.ingested == 3, summary.rejects
    finally:
        components.close()
    gallery = Gallery(root=root, db=root / "text.db", collection="text", checkpoint=checkpoint,
                      count=3, query_image=folder / "red-circle.png")
    with serving(gallery, root / "serve.log") as server:
        yield server


def test_a_passage_hit_is_shown_as_its_text(page: Any, text_server: Server) -> None:
    open_page(page, text_server)
    wait_collection(page, 3)
    page.find_element(By.ID, "query").send_keys("a red circle")
    page.find_element(By.ID, "search-submit").click()
    wait_for(page, search_idle, 30, "the search to finish")
    wait_for(page, lambda d: all(c["img"] is not False for c in d.execute_script(CARDS_JS)),
             30, "the image thumbnails to load")
    cards = page.execute_script(CARDS_JS)
    assert len(cards) == 3
    passage = next(card for card in cards if card["text"] is not None)
    assert passage == {"caption": "hall.txt, passage 1 of 1", "text": PASSAGE, "visible": True,
                       "img": None}
    assert sum(card["img"] is True for card in cards) == 2  # the images load as images
    assert console_errors(page, http_errors_expected=False) == []

    index = cards.index(passage)
    page.find_elements(By.CSS_SELECTOR, "#results .card")[index].click()
    dialog = page.find_element(By.ID, "detail")
    wait_for(page, lambda d: dialog.get_attribute("open") is not None, 5, "the detail view")
    assert page.find_element(By.ID, "detail-title").text == "hall.txt, passage 1 of 1"
    shown = page.find_element(By.ID, "detail-passage")
    assert shown.is_displayed() and shown.text == PASSAGE
    assert not page.find_element(By.ID, "detail-image").is_displayed()
    page.find_element(By.ID, "detail-close").click()

    # "Show" narrows the same search to one kind (the passage, then the two images), and back
    show = Select(page.find_element(By.ID, "search-modality"))
    for value, expected in (("text", [None]), ("image", [True, True]),
                            ("", sorted([None, True, True], key=str))):
        show.select_by_value(value)
        wait_for(page, lambda d, want=expected: search_idle(d) and sorted(
                     (c["img"] for c in d.execute_script(CARDS_JS)), key=str) == want,
                 30, f"the results of Show={value or 'both'}")
