"""/docs (Swagger UI) and /redoc (ReDoc) in headless Chromium, offline, with MMRAG_API_KEY set.

Every https request is blocked in the browser (where a CDN would be), every resource the pages
load must come from the server itself, and the pages must list every operation of the schema.
"""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("selenium", reason="selenium is not installed (test extra)")

import httpx

from tests.ui.ui_support import Server, console_errors, wait_for

RESOURCES_JS = """
return performance.getEntriesByType('resource').map((e) => [e.name, e.responseStatus]);"""


def operations(server: Server) -> list[tuple[str, str, str]]:
    """(method, path, summary) of every documented operation (the schema needs no key)."""
    schema = httpx.get(f"{server.base}/openapi.json", timeout=10, trust_env=False).json()
    return [(method.upper(), path, op.get("summary", ""))
            for path, ops in schema["paths"].items() for method, op in ops.items()]


def offline(driver: Any) -> None:
    """Block every https request (CDNs, fonts) for the page."""
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": ["https://*"]})


def loaded_from(driver: Any, server: Server) -> list[str]:
    """Resources the page loaded (got an answer for) from anywhere but the server.

    ReDoc's footer logo points at its CDN: the page's CSP refuses it and it hides itself.
    """
    entries = driver.execute_script(RESOURCES_JS)
    local = [name for name, status in entries if name.startswith(server.base + "/") and status]
    assert any(name.endswith(".js") for name in local), entries
    return [name for name, status in entries
            if status and not name.startswith(server.base + "/")]


def test_swagger_ui_lists_every_operation_offline(page: Any, ui_key_server: Server) -> None:
    expected = operations(ui_key_server)
    offline(page)
    page.get(f"{ui_key_server.base}/docs")
    shown = wait_for(page, lambda d: d.execute_script("""
        const ops = [...document.querySelectorAll('.opblock')].map((op) => [
          op.querySelector('.opblock-summary-method').textContent.trim(),
          op.querySelector('.opblock-summary-path').getAttribute('data-path')]);
        return ops.length >= arguments[0] ? ops : false;""", len(expected)), 30,
        "Swagger UI listing the operations")
    assert sorted(map(tuple, shown)) == sorted((m, p) for m, p, _ in expected)
    assert ["POST", "/v1/chat/completions"] in shown and ["POST", "/v1/completions"] in shown
    assert page.find_element("css selector", ".btn.authorize")  # to send the key
    assert loaded_from(page, ui_key_server) == []
    assert console_errors(page) == []


def test_redoc_lists_every_operation_offline(page: Any, ui_key_server: Server) -> None:
    expected = operations(ui_key_server)
    offline(page)
    page.get(f"{ui_key_server.base}/redoc")
    text = wait_for(page, lambda d: (t := d.execute_script(
        "return document.body.innerText")) and "OpenAI-compatible grounded chat" in t and t,
        30, "ReDoc rendering the operations")
    missing = [summary for _, _, summary in expected if summary and summary not in text]
    assert missing == []
    assert loaded_from(page, ui_key_server) == []
