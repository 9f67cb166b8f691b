"""The web UI in headless Chromium against a real ``mmrag serve`` with the demo model.

Desktop (1280x900) and phone (390x844) viewports: text search with loaded thumbnails, the
detail view, "more like this", image upload and drop, filters, empty and error states, the
streaming chat with cited thumbnails, keyboard use and labels. Screenshots go to
tests/ui/output/<test>/ (and, with MMRAG_UI_UPDATE_DOCS=1, to docs/images/).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("selenium", reason="selenium is not installed (test extra)")

from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

from tests.ui.ui_support import (
    PHONE,
    Gallery,
    Server,
    console_errors,
    open_page,
    publish_screenshot,
    result_cards,
    screenshot,
    search_idle,
    set_viewport,
    wait_collection,
    wait_for,
    wait_thumbnails,
)

CHAT_QUESTION = "which pictures show a blue square?"
STREAM_PROBE_JS = """
window.__chatMutations = 0;
new MutationObserver((records) => {
  window.__chatMutations += records.filter((r) => r.type === 'characterData').length;
}).observe(document.getElementById('chat-log'), {subtree: true, characterData: true});
"""


def _search(driver: Any, text: str) -> list[dict[str, Any]]:
    query = driver.find_element(By.ID, "query")
    query.clear()
    query.send_keys(text)
    driver.find_element(By.ID, "search-submit").click()
    wait_for(driver, lambda d: "Results for" in d.find_element(By.ID, "query-summary").text
             and text in d.find_element(By.ID, "query-summary").text, 10, "the query summary")
    wait_for(driver, search_idle, 30, "the search to finish")
    wait_thumbnails(driver, "#results img", 6)
    return result_cards(driver)


def _select_filter(driver: Any, label: str) -> Any:
    target = driver.find_element(By.XPATH, f"//div[@id='filter-fields']//label[.='{label}']")
    return driver.find_element(By.ID, target.get_attribute("for"))


def _open_filters(driver: Any) -> None:
    details = driver.find_element(By.ID, "filters")
    if details.get_attribute("open") is None:
        details.find_element(By.TAG_NAME, "summary").click()
    wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#filter-fields select"), 10,
             "the filter controls")


def test_search_detail_more_like_this(
    page: Any, ui_server: Server, ui_gallery: Gallery, ui_output: Path
) -> None:
    open_page(page, ui_server)
    wait_collection(page, ui_gallery.count)
    cards = _search(page, "a red circle")
    assert len(cards) == 24  # one page
    assert all(card["loaded"] for card in cards[:6]), cards[:6]
    assert any("red" in card["caption"] for card in cards[:3]), cards[:3]
    for card in cards:  # alt text is the caption; every card shows a score
        assert card["alt"] == card["caption"] and card["alt"]
        assert card["score"].startswith("score 0.") or card["score"].startswith("score -")
    assert "size=256" in cards[0]["src"]
    assert page.execute_script(  # thumbnails below the fold wait until scrolled to
        "return [...document.querySelectorAll('#results img')].every((i) => i.loading === 'lazy')"
    )
    shot = screenshot(page, ui_output / "search.png")
    publish_screenshot(shot, "search.png")

    first = page.find_element(By.CSS_SELECTOR, "#results .card")
    first.click()
    dialog = page.find_element(By.ID, "detail")
    wait_for(page, lambda d: dialog.get_attribute("open") is not None, 5, "the detail view")
    wait_thumbnails(page, "#detail-image", 1)
    assert page.find_element(By.ID, "detail-title").text == cards[0]["caption"]
    terms = [dt.text for dt in dialog.find_elements(By.CSS_SELECTOR, "dt")]
    assert {"id", "score", "source", "colour", "shape"} <= set(terms), terms
    values = dict(zip(terms, [dd.text for dd in dialog.find_elements(By.CSS_SELECTOR, "dd")],
                      strict=True))
    assert values["id"] == cards[0]["id"]
    assert values["colour"] in cards[0]["caption"] and values["shape"] in cards[0]["caption"]
    assert page.switch_to.active_element.get_attribute("id") == "detail-similar"
    screenshot(page, ui_output / "detail.png")

    page.find_element(By.ID, "detail-similar").click()
    wait_for(page, lambda d: "More like" in d.find_element(By.ID, "query-summary").text, 10,
             "the more-like-this summary")
    wait_for(page, search_idle, 30, "the more-like-this search")
    wait_thumbnails(page, "#results img", 6)
    similar = result_cards(page)
    assert dialog.get_attribute("open") is None
    assert similar and cards[0]["id"] not in {card["id"] for card in similar}
    assert similar[0]["id"] != cards[0]["id"]
    wait_thumbnails(page, "#query-summary img", 1)
    screenshot(page, ui_output / "more-like-this.png")
    assert console_errors(page) == []


def test_image_upload_and_drop(
    page: Any, ui_server: Server, ui_gallery: Gallery, ui_output: Path
) -> None:
    open_page(page, ui_server)
    wait_collection(page, ui_gallery.count)
    page.find_element(By.ID, "image-file").send_keys(str(ui_gallery.query_image))
    summary = page.find_element(By.ID, "query-summary")
    wait_for(page, lambda d: "Images similar to" in summary.text
             and ui_gallery.query_image.name in summary.text, 10, "the upload summary")
    wait_for(page, search_idle, 30, "the image search")
    wait_thumbnails(page, "#results img", 6)
    wait_thumbnails(page, "#query-summary img", 1)  # the preview of the uploaded image
    cards = result_cards(page)
    assert any("blue" in card["caption"] for card in cards[:3]), cards[:3]
    screenshot(page, ui_output / "upload.png")

    # Drop a generated PNG on the drop zone (the same handler a real drag-and-drop reaches).
    page.execute_script("""
        const canvas = document.createElement('canvas');
        canvas.width = canvas.height = 96;
        const ctx = canvas.getContext('2d');
        ctx.fillStyle = '#888'; ctx.fillRect(0, 0, 96, 96);
        ctx.fillStyle = '#d81e1e'; ctx.beginPath(); ctx.arc(48, 48, 28, 0, 7); ctx.fill();
        canvas.toBlob((blob) => {
          const data = new DataTransfer();
          data.items.add(new File([blob], 'dropped-red-circle.png', {type: 'image/png'}));
          const zone = document.getElementById('drop-zone');
          for (const type of ['dragenter', 'dragover', 'drop']) {
            zone.dispatchEvent(new DragEvent(type, {dataTransfer: data, bubbles: true,
                                                    cancelable: true}));
          }
        }, 'image/png');
    """)
    wait_for(page, lambda d: "dropped-red-circle.png" in summary.text, 10, "the drop summary")
    wait_for(page, search_idle, 30, "the dropped-image search")
    wait_thumbnails(page, "#results img", 4)
    assert any("red" in card["caption"] for card in result_cards(page)[:3])

    # Not an image: a clear message, no request.
    page.execute_script("""
        const data = new DataTransfer();
        data.items.add(new File(['hello'], 'notes.txt', {type: 'text/plain'}));
        document.getElementById('drop-zone').dispatchEvent(
          new DragEvent('drop', {dataTransfer: data, bubbles: true, cancelable: true}));
    """)
    error = page.find_element(By.ID, "search-error")
    wait_for(page, lambda d: error.is_displayed() and "notes.txt" in error.text, 5,
             "the not-an-image message")
    assert console_errors(page) == []


def test_filters_and_empty_state(page: Any, ui_server: Server, ui_gallery: Gallery) -> None:
    open_page(page, ui_server)
    wait_collection(page, ui_gallery.count)
    _search(page, "a circle")
    _open_filters(page)
    Select(_select_filter(page, "colour")).select_by_visible_text("green")
    wait_for(page, lambda d: search_idle(d) and all(
        "green" in card["caption"] for card in result_cards(d)), 30, "green-only results")
    cards = result_cards(page)
    assert 1 <= len(cards) < 24
    assert page.find_element(By.ID, "filter-count").text == "1 on"

    caption = _select_filter(page, "caption contains")
    caption.send_keys("zebra", Keys.ENTER)  # change event: search again
    empty = page.find_element(By.ID, "search-empty")
    wait_for(page, lambda d: empty.is_displayed(), 30, "the empty state")
    assert "No results for" in empty.text and "a circle" in empty.text
    assert "Filters are on" in empty.text
    assert result_cards(page) == []
    assert page.find_element(By.ID, "search-status").text == "No results."

    empty.find_element(By.TAG_NAME, "button").click()  # "Clear filters"
    wait_for(page, lambda d: search_idle(d) and len(result_cards(d)) == 24, 30,
             "unfiltered results again")
    assert page.find_element(By.ID, "filter-count").text == ""

    more = page.find_element(By.ID, "more")  # paging: 24 + 24 + the last 12 of 60
    for shown in (48, ui_gallery.count):
        more.click()
        wait_for(page, lambda d, n=shown: search_idle(d) and len(result_cards(d)) == n, 30,
                 f"{shown} results")
    assert not more.is_displayed()
    ids = [card["id"] for card in result_cards(page)]
    assert len(set(ids)) == ui_gallery.count
    assert console_errors(page) == []


def test_api_error_message_is_shown(page: Any, ui_server: Server, ui_gallery: Gallery) -> None:
    open_page(page, ui_server)
    wait_collection(page, ui_gallery.count)
    _search(page, "a yellow star")
    query = page.find_element(By.ID, "query")
    query.clear()
    query.send_keys("a blue square " * 20, Keys.ENTER)  # 280 characters; the server takes 200
    error = page.find_element(By.ID, "search-error")
    wait_for(page, lambda d: error.is_displayed(), 30, "the error message")
    assert "Search failed" in error.text
    assert "at most 200" in error.text  # the API's own message
    assert "invalid_query" in error.text and "HTTP 422" in error.text
    assert result_cards(page) == []
    assert page.find_element(By.ID, "search-status").text == ""

    query.clear()
    query.send_keys("   ", Keys.ENTER)
    wait_for(page, lambda d: "Nothing to search for" in error.text, 5, "the empty-query hint")
    assert console_errors(page, http_errors_expected=True) == []


def test_chat_streams_answer_with_cited_thumbnails(
    page: Any, ui_server: Server, ui_gallery: Gallery, ui_output: Path
) -> None:
    open_page(page, ui_server, "#chat")
    wait_collection(page, ui_gallery.count)
    assert page.find_element(By.ID, "view-chat").is_displayed()
    assert not page.find_element(By.ID, "view-search").is_displayed()
    page.execute_script(STREAM_PROBE_JS)
    box = page.find_element(By.ID, "chat-input")
    box.send_keys(CHAT_QUESTION, Keys.ENTER)
    wait_for(page, lambda d: d.find_elements(By.CSS_SELECTOR, ".msg-assistant .cited img"), 60,
             "the cited images")
    wait_thumbnails(page, ".msg-assistant .cite-thumb img", 1)
    wait_thumbnails(page, ".msg-assistant .cited img", 1)
    # The answer was rendered token by token while it streamed, then finished.
    assert page.execute_script("return window.__chatMutations") > 1
    answer = page.find_element(By.CSS_SELECTOR, ".msg-assistant .answer-text")
    assert "[1]" in answer.text and "blue" in answer.text
    assert "streaming" not in (answer.get_attribute("class") or "")
    user = page.find_element(By.CSS_SELECTOR, ".msg-user").text
    assert CHAT_QUESTION in user
    markers = page.find_elements(By.CSS_SELECTOR, ".msg-assistant .cite")
    assert markers and markers[0].find_element(By.CSS_SELECTOR, ".cite-n").text == "[1]"
    first_thumb = markers[0].find_element(By.CSS_SELECTOR, "img")
    cited = page.find_elements(By.CSS_SELECTOR, ".msg-assistant .cited img")
    assert first_thumb.get_attribute("alt") == cited[0].get_attribute("alt") != ""
    assert "Answer complete" in page.find_element(By.ID, "chat-status").text
    page.execute_script("window.scrollTo(0, 0)")  # the question, the answer, its images
    shot = screenshot(page, ui_output / "chat.png")
    publish_screenshot(shot, "chat.png")

    # A cited thumbnail opens the item; a follow-up question keeps the conversation.
    markers[0].find_element(By.CSS_SELECTOR, "button").click()
    dialog = page.find_element(By.ID, "detail")
    wait_for(page, lambda d: dialog.get_attribute("open") is not None, 5, "the detail view")
    assert "[1]" in dialog.text
    page.find_element(By.ID, "detail-close").click()
    box.send_keys("and a red one?", Keys.ENTER)
    wait_for(page, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".msg-assistant .cited")) == 2,
             60, "the second answer")
    assert len(page.find_elements(By.CSS_SELECTOR, ".msg-user")) == 2
    page.find_element(By.ID, "chat-new").click()
    assert page.find_elements(By.CSS_SELECTOR, "#chat-log li") == []
    assert console_errors(page) == []


def test_phone_layout(page: Any, ui_server: Server, ui_gallery: Gallery, ui_output: Path) -> None:
    set_viewport(page, PHONE, mobile=True)
    open_page(page, ui_server)
    wait_collection(page, ui_gallery.count)
    assert page.execute_script("return innerWidth") == PHONE[0]
    _search(page, "a yellow star")
    rects = page.execute_script("""
        return [...document.querySelectorAll('#results .card')].slice(0, 3)
          .map((c) => c.getBoundingClientRect().toJSON());""")
    assert rects[0]["top"] == rects[1]["top"] and rects[2]["top"] > rects[0]["top"]  # 2 columns
    assert rects[1]["right"] <= PHONE[0]
    no_overflow = "return document.documentElement.scrollWidth <= innerWidth"
    assert page.execute_script(no_overflow)
    screenshot(page, ui_output / "phone-search.png")

    page.find_element(By.CSS_SELECTOR, "#results .card").click()
    wait_thumbnails(page, "#detail-image", 1)
    box = page.find_element(By.ID, "detail").rect
    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE[0]
    screenshot(page, ui_output / "phone-detail.png")
    page.find_element(By.ID, "detail-similar").click()
    wait_for(page, lambda d: "More like" in d.find_element(By.ID, "query-summary").text, 10,
             "more like this")
    wait_thumbnails(page, "#results img", 4)

    page.find_element(By.ID, "tab-chat").click()
    page.find_element(By.ID, "chat-input").send_keys("a yellow star?", Keys.ENTER)
    wait_for(page, lambda d: d.find_elements(By.CSS_SELECTOR, ".msg-assistant .cited img"), 60,
             "the cited images")
    wait_thumbnails(page, ".msg-assistant .cite-thumb img", 1)
    assert page.execute_script(no_overflow)
    screenshot(page, ui_output / "phone-chat.png")
    assert console_errors(page) == []


def test_keyboard_order_labels_and_alt_text(
    page: Any, ui_server: Server, ui_gallery: Gallery
) -> None:
    open_page(page, ui_server)
    wait_collection(page, ui_gallery.count)
    describe = """
        const e = document.activeElement;
        return e.id || (e.classList.contains('card') ? 'card:' + e.dataset.rank : e.tagName);
    """
    actions = ActionChains(page)
    for _ in range(8):  # from the top of the page to the search box, by keyboard only
        actions.send_keys(Keys.TAB).perform()
        if page.execute_script(describe) == "query":
            break
    assert page.execute_script(describe) == "query"
    actions.send_keys("a purple star", Keys.ENTER).perform()
    wait_for(page, search_idle, 30, "the search")
    wait_thumbnails(page, "#results img", 4)

    page.execute_script("document.querySelector('.skip-link').focus()")
    order = []
    for _ in range(15):
        actions.send_keys(Keys.TAB).perform()
        order.append(page.execute_script(describe))
        if order[-1] == "card:1":
            break
    assert "card:1" in order, order
    assert order.index("query") < order.index("search-submit") < order.index("card:1"), order
    assert order.index("search-submit") < order.index("image-file") < order.index("card:1")
    assert order[:2] == ["tab-search", "tab-chat"], order

    actions.send_keys(Keys.ENTER).perform()  # open the focused result
    dialog = page.find_element(By.ID, "detail")
    wait_for(page, lambda d: dialog.get_attribute("open") is not None, 5, "the detail view")
    assert page.execute_script(describe) == "detail-similar"
    actions.send_keys(Keys.TAB).perform()
    assert page.execute_script(describe) == "detail-close"
    actions.send_keys(Keys.ESCAPE).perform()
    wait_for(page, lambda d: dialog.get_attribute("open") is None, 5, "the dialog to close")
    assert page.execute_script(describe) == "card:1"  # focus returns to the result

    unlabelled = page.execute_script("""
        return [...document.querySelectorAll('input, select, textarea')]
          .filter((e) => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
          .map((e) => e.id || e.outerHTML);""")
    assert unlabelled == []
    nameless = page.execute_script("""
        return [...document.querySelectorAll('button')].filter((b) => !b.textContent.trim()
          && !b.getAttribute('aria-label') && !(b.querySelector('img[alt]:not([alt=""])')))
          .map((b) => b.outerHTML);""")
    assert nameless == []
    alts = page.execute_script("""
        return [...document.querySelectorAll('#results .card')].map((c) =>
          [c.querySelector('img').alt, c.querySelector('.card-caption').textContent]);""")
    assert alts and all(alt == caption and alt for alt, caption in alts)
    assert page.execute_script("return document.documentElement.lang") == "en"
    assert console_errors(page) == []
