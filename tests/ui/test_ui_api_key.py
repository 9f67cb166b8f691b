"""The web UI against a server with MMRAG_API_KEY: the page loads, asks for the key, uses it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("selenium", reason="selenium is not installed (test extra)")

import httpx
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from tests.ui.conftest import API_KEY
from tests.ui.ui_support import (
    REPO,
    Gallery,
    Server,
    console_errors,
    open_page,
    result_cards,
    screenshot,
    search_idle,
    wait_collection,
    wait_for,
    wait_thumbnails,
)


def test_page_and_assets_load_without_the_key_data_does_not(ui_key_server: Server) -> None:
    with httpx.Client(base_url=ui_key_server.base, timeout=10.0, trust_env=False) as http:
        page = http.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in page.headers["content-security-policy"]
        for name in ("app.js", "api.js", "dom.js", "app.css", "favicon.svg"):
            assert http.get(f"/static/{name}").status_code == 200, name
        for name in sorted(p.name for p in (REPO / "retrieval/api/static").glob("*.js")):
            assert http.get(f"/static/{name}").status_code == 200, name
        for path in ("/stats", "/fields", "/collections", "/items/x", "/ready"):
            assert http.get(path).status_code == 401, path
        assert http.post("/search", json={"query": "a red circle"}).status_code == 401
        assert http.post("/search/similar", json={"id": "x"}).status_code == 401
        assert http.post("/", json={}).status_code == 401  # only GET of the page is public
        assert http.get("/stats", headers={"X-API-Key": API_KEY}).status_code == 200


def _key_dialog_open(driver: Any) -> bool:
    return driver.find_element(By.ID, "key-dialog").get_attribute("open") is not None


def test_key_prompt_then_search_chat_with_the_key(
    page: Any, ui_key_server: Server, ui_gallery: Gallery, ui_output: Path
) -> None:
    open_page(page, ui_key_server)
    wait_for(page, _key_dialog_open, 15, "the API key prompt")
    assert page.switch_to.active_element.get_attribute("id") == "key-input"
    assert "needs an API key" in page.find_element(By.ID, "key-message").text
    screenshot(page, ui_output / "key-prompt.png")

    key_input = page.find_element(By.ID, "key-input")
    key_input.send_keys("not-the-key", Keys.ENTER)
    error = page.find_element(By.ID, "key-error")
    wait_for(page, lambda d: "refused" in error.text, 10, "the refused-key message")
    assert _key_dialog_open(page)
    assert "missing or wrong API key" in error.text  # the API's message

    key_input.clear()
    key_input.send_keys(API_KEY, Keys.ENTER)
    wait_for(page, lambda d: not _key_dialog_open(d), 10, "the prompt to close")
    wait_collection(page, ui_gallery.count)
    assert page.execute_script("return sessionStorage.getItem('mmrag.apiKey')") == API_KEY
    assert page.execute_script("return localStorage.getItem('mmrag.apiKey')") is None
    assert page.find_element(By.ID, "key-button").is_displayed()

    page.find_element(By.ID, "query").send_keys("a green square", Keys.ENTER)
    wait_for(page, search_idle, 30, "the search")
    wait_thumbnails(page, "#results img", 6)  # fetched with the key, shown as blob: URLs
    cards = result_cards(page)
    assert all(card["src"].startswith("blob:") for card in cards[:6] if card["loaded"])
    page.find_element(By.CSS_SELECTOR, "#results .card").click()
    wait_thumbnails(page, "#detail-image", 1)
    page.find_element(By.ID, "detail-similar").click()
    wait_for(page, lambda d: "More like" in d.find_element(By.ID, "query-summary").text, 10,
             "more like this")
    wait_for(page, search_idle, 30, "the more-like-this search")
    wait_thumbnails(page, "#results img", 4)

    page.find_element(By.ID, "tab-chat").click()
    page.find_element(By.ID, "chat-input").send_keys("a green square?", Keys.ENTER)
    wait_thumbnails(page, ".msg-assistant .cite-thumb img", 1, timeout=60)

    page.refresh()  # the key is kept for this tab's session: no prompt again
    open_page(page, ui_key_server)
    wait_collection(page, ui_gallery.count)
    assert not _key_dialog_open(page)
    assert console_errors(page, http_errors_expected=True) == []


def test_cancelled_prompt_shows_why(page: Any, ui_key_server: Server) -> None:
    open_page(page, ui_key_server)
    wait_for(page, _key_dialog_open, 15, "the API key prompt")
    page.find_element(By.ID, "key-cancel").click()
    error = page.find_element(By.ID, "search-error")
    wait_for(page, lambda d: error.is_displayed(), 10, "the error")
    assert "needs an API key" in error.text
    button = error.find_element(By.TAG_NAME, "button")
    assert button.text == "Enter API key"
    button.click()
    wait_for(page, _key_dialog_open, 5, "the prompt again")
    page.find_element(By.ID, "key-input").send_keys(Keys.ESCAPE)
    wait_for(page, lambda d: not _key_dialog_open(d), 5, "the prompt to close")
    assert console_errors(page, http_errors_expected=True) == []


COUNT_FETCHES_JS = """
window.__fetched = [];
const original = window.fetch;
window.fetch = (url, init) => {
  window.__fetched.push(new URL(url, document.baseURI).pathname);
  return original(url, init);
};
"""


def test_key_entered_after_a_failed_load_reloads_the_collection_once(
    page: Any, ui_key_server: Server, ui_gallery: Gallery
) -> None:
    open_page(page, ui_key_server)
    wait_for(page, _key_dialog_open, 15, "the API key prompt")
    page.find_element(By.ID, "key-cancel").click()
    note = page.find_element(By.ID, "filters-note")
    wait_for(page, lambda d: "unavailable" in note.get_attribute("textContent"), 10,
             "the collection to fail to load")
    page.execute_script(COUNT_FETCHES_JS)
    page.find_element(By.CSS_SELECTOR, "#search-error button").click()
    wait_for(page, _key_dialog_open, 5, "the prompt again")
    page.find_element(By.ID, "key-input").send_keys(API_KEY, Keys.ENTER)
    wait_for(page, lambda d: not _key_dialog_open(d), 10, "the prompt to close")
    wait_collection(page, ui_gallery.count)
    wait_for(page, lambda d: d.find_elements(By.CSS_SELECTOR, "#filter-fields select"), 10,
             "the filter controls")
    time.sleep(0.5)  # a second load, if any, has asked for the fields by now
    fetched = page.execute_script("return window.__fetched")
    assert fetched.count("/stats") == 2, fetched  # the key check, then the collection once
    assert fetched.count("/fields") == 1, fetched
    assert console_errors(page, http_errors_expected=True) == []
