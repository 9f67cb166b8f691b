"""The Duplicates view (#18.4): Chromium against a real ``mmrag serve`` over the demo gallery shows
the groups GET /duplicates returns, in its order, with their thumbnails, paged; a thumbnail
opens the detail dialog, and a threshold outside (0, 1] is refused with a message."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from selenium.webdriver.common.by import By

from tests.ui.ui_support import (
    Server,
    console_errors,
    open_page,
    screenshot,
    wait_for,
    wait_thumbnails,
)

THRESHOLD = "0.9"  # the demo gallery repeats colour-shape pairs: they group at this level

GROUPS_JS = """
return [...document.querySelectorAll('#dup-groups > .dup-group')].map((group) => ({
  title: group.querySelector('.dup-title').textContent,
  names: [...group.querySelectorAll('.dup-name')].map((n) => n.textContent),
}));
"""


def _status(page: Any) -> str:
    return page.find_element(By.ID, "dup-status").text


def test_duplicates_view_shows_the_api_groups(
    page: Any, ui_server: Server, ui_output: Path
) -> None:
    with httpx.Client(base_url=ui_server.base, trust_env=False, timeout=60) as api:
        first = api.get("/duplicates", params={"threshold": THRESHOLD, "page_size": 12}).json()
    assert first["total_groups"] > 0, first
    open_page(page, ui_server, "#duplicates")
    assert page.find_element(By.ID, "view-duplicates").is_displayed()
    wait_for(page, lambda d: "groups" in _status(d) or "No near" in _status(d), 60,
             "the first scan (default threshold)")
    threshold = page.find_element(By.ID, "dup-threshold")
    threshold.clear()
    threshold.send_keys(THRESHOLD)
    page.find_element(By.ID, "dup-find").click()
    wait_for(page, lambda d: f"at {THRESHOLD}" in _status(d), 60, "the scan at 0.9")
    shown = page.execute_script(GROUPS_JS)
    expected = [[m["caption"] for m in g["members"]] for g in first["groups"]]
    assert [g["names"] for g in shown] == expected
    assert shown[0]["title"].startswith(f"Group 1: {first['groups'][0]['size']} images")
    assert f"{first['total_groups']} groups" in _status(page)
    wait_thumbnails(page, "#dup-groups img", len(expected[0]))  # the first group (lazy below)
    screenshot(page, ui_output / "duplicates.png")
    # a thumbnail opens the detail dialog of that image
    page.find_element(By.CSS_SELECTOR, "#dup-groups .dup-member").click()
    dialog = page.find_element(By.ID, "detail")
    wait_for(page, lambda d: dialog.get_attribute("open") is not None, 5, "the detail view")
    assert page.find_element(By.ID, "detail-title").text == expected[0][0]
    page.find_element(By.ID, "detail-close").click()
    # paging, when there is more than a page
    pager = page.find_element(By.ID, "dup-pager")
    assert pager.is_displayed() == (first["total_groups"] > 12)
    # a threshold outside (0, 1] is refused before any request
    threshold.clear()
    threshold.send_keys("1.5")
    page.find_element(By.ID, "dup-find").click()
    error = page.find_element(By.ID, "dup-error")
    wait_for(page, lambda d: error.is_displayed(), 5, "the threshold message")
    assert "within (0, 1]" in error.text
    assert console_errors(page) == []
