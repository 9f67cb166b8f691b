"""The web UI in headless Firefox ESR (Debian's), driven over WebDriver BiDi (tests/ui/bidi.py).

The same user journey as in Chromium, with real key and pointer input, at desktop and phone
sizes. Skipped when firefox-esr is not installed. One gap: a headless Firefox document never
has OS focus, and there a synthesized Enter on a <button> fires no click, so keyboard
activation of a result is checked in Chromium only (Tab order and Escape are checked here).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ui.bidi import KEYS, Firefox, firefox, firefox_missing
from tests.ui.ui_support import DESKTOP, PHONE, Gallery, Server

CSP_PROBE = """() => {
  window.__csp = [];
  document.addEventListener('securitypolicyviolation',
    (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
}"""
LOADED = """
const imgs = [...document.querySelectorAll(args[0])].slice(0, args[1]);
return imgs.length >= args[1] && imgs.every((i) => i.complete && i.naturalWidth > 0);
"""
CARDS = """
return [...document.querySelectorAll('#results .card')].map((c) => ({
  id: c.dataset.id, alt: c.querySelector('img').alt,
  caption: c.querySelector('.card-caption').textContent}));
"""
IDLE = "return document.getElementById('results').getAttribute('aria-busy') === 'false'"
FOCUSED = """
const e = document.activeElement;
return e.id || (e.classList.contains('card') ? 'card:' + e.dataset.rank : e.tagName);
"""


@pytest.fixture(scope="module")
def ff(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Firefox]:
    """One headless Firefox for this module."""
    reason = firefox_missing()
    if reason:
        pytest.skip(reason)
    with firefox(tmp_path_factory.mktemp("firefox") / "profile") as browser:
        browser.preload(CSP_PROBE)
        yield browser


def _open(ff: Firefox, server: Server, gallery: Gallery) -> None:
    ff.navigate(f"{server.base}/")
    ff.wait("return document.body.dataset.ready === 'true' && "
            "document.getElementById('collection-info').textContent.includes(args[0])",
            f"{gallery.count} items", what="the collection summary")


def _search(ff: Firefox, text: str) -> list[dict[str, str]]:
    ff.js("const q = document.getElementById('query'); q.value = ''; q.focus();")
    ff.type(text + KEYS["ENTER"])
    ff.wait("return document.getElementById('query-summary').textContent.includes(args[0])",
            text, what="the query summary")
    ff.wait(IDLE, what="the search")
    ff.wait(LOADED, "#results img", 6, what="loaded thumbnails")
    return list(ff.js(CARDS))


def _ask(ff: Firefox, question: str) -> None:
    ff.click("#tab-chat")
    ff.js("""
        window.__chatMutations = 0;
        new MutationObserver((records) => {
          window.__chatMutations += records.filter((r) => r.type === 'characterData').length;
        }).observe(document.getElementById('chat-log'), {subtree: true, characterData: true});
        document.getElementById('chat-input').focus();""")
    ff.type(question + KEYS["ENTER"])
    ff.wait(LOADED, ".msg-assistant .cited img", 1, timeout=60, what="the cited images")
    ff.wait(LOADED, ".msg-assistant .cite-thumb img", 1, what="the inline cited thumbnails")
    assert ff.js("return window.__chatMutations") > 1  # streamed token by token
    text = ff.js("return document.querySelector('.msg-assistant .answer-text').textContent")
    assert "[1]" in text


def test_firefox_desktop_journey(
    ff: Firefox, ui_server: Server, ui_gallery: Gallery, ui_output: Path
) -> None:
    ff.viewport(*DESKTOP)
    _open(ff, ui_server, ui_gallery)
    cards = _search(ff, "a red circle")
    assert len(cards) == 24 and all(c["alt"] == c["caption"] != "" for c in cards)
    assert any("red" in c["caption"] for c in cards[:3]), cards[:3]
    ff.screenshot(ui_output / "firefox-search.png")

    ff.click("#results .card")
    ff.wait("return document.getElementById('detail').open", what="the detail view")
    ff.wait(LOADED, "#detail-image", 1, what="the detail image")
    assert ff.js(FOCUSED) == "detail-similar"
    assert "colour" in ff.js("return document.getElementById('detail-meta').textContent")
    ff.click("#detail-similar")
    ff.wait("return document.getElementById('query-summary').textContent.includes('More like')",
            what="more like this")
    ff.wait(IDLE, what="the more-like-this search")
    ff.wait(LOADED, "#results img", 6, what="similar thumbnails")
    assert cards[0]["id"] not in {c["id"] for c in ff.js(CARDS)}

    ff.set_files("#image-file", ui_gallery.query_image)
    ff.wait("return document.getElementById('query-summary').textContent.includes(args[0])",
            ui_gallery.query_image.name, what="the upload summary")
    ff.wait(IDLE, what="the image search")
    ff.wait(LOADED, "#results img", 6, what="thumbnails of the image search")
    assert any("blue" in c["caption"] for c in ff.js(CARDS)[:3])

    ff.js("document.querySelector('.skip-link').focus()")
    order = []
    for _ in range(15):
        ff.type(KEYS["TAB"])
        order.append(ff.js(FOCUSED))
        if order[-1] == "card:1":
            break
    assert "card:1" in order, order
    assert order.index("query") < order.index("search-submit") < order.index("card:1"), order
    # Headless Firefox never gives the document OS focus, and there a synthesized Enter on a
    # <button> fires no click (native behaviour, checked in Chromium): click the focused card.
    ff.click("#results .card")
    ff.wait("return document.getElementById('detail').open", what="the detail view")
    ff.type(KEYS["ESCAPE"])
    ff.wait("return !document.getElementById('detail').open", what="the dialog to close")
    assert ff.js(FOCUSED) == "card:1"

    _ask(ff, "which pictures show a blue square?")
    ff.screenshot(ui_output / "firefox-chat.png")
    assert ff.js("return window.__csp") == []
    assert ff.errors() == []


def test_firefox_phone_journey(
    ff: Firefox, ui_server: Server, ui_gallery: Gallery, ui_output: Path
) -> None:
    ff.viewport(*PHONE, pixel_ratio=3.0)
    _open(ff, ui_server, ui_gallery)
    assert ff.js("return innerWidth") == PHONE[0]
    _search(ff, "a yellow star")
    rects = ff.js("""return [...document.querySelectorAll('#results .card')].slice(0, 3)
                       .map((c) => c.getBoundingClientRect().toJSON());""")
    assert rects[0]["top"] == rects[1]["top"] < rects[2]["top"]  # two columns
    assert ff.js("return document.documentElement.scrollWidth <= innerWidth")
    ff.screenshot(ui_output / "firefox-phone-search.png")
    ff.click("#results .card")
    ff.wait(LOADED, "#detail-image", 1, what="the detail image")
    box = ff.js("return document.getElementById('detail').getBoundingClientRect().toJSON()")
    assert box["left"] >= 0 and box["right"] <= PHONE[0]
    ff.click("#detail-close")
    _ask(ff, "a yellow star?")
    assert ff.js("return document.documentElement.scrollWidth <= innerWidth")
    ff.screenshot(ui_output / "firefox-phone-chat.png")
    assert ff.js("return window.__csp") == []
    assert ff.errors() == []
