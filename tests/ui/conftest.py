"""UI fixtures: one demo gallery, ``mmrag serve`` over it (with and without an API key), Chromium.

Browser tests are skipped, with the reason, when Debian's chromium/chromium-driver (or selenium)
are missing (``scripts/install-browser.sh`` installs them); the Firefox ones when firefox-esr is.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ui.ui_support import (
    DESKTOP,
    Gallery,
    Server,
    browser_missing,
    build_gallery,
    chromium,
    output_dir,
    serving,
    set_viewport,
)

API_KEY = "ui-test-key-5f2b"


@pytest.fixture(scope="session")
def ui_gallery(tmp_path_factory: pytest.TempPathFactory) -> Gallery:
    """60 synthetic demo images ingested with mmrag-demo."""
    return build_gallery(tmp_path_factory.mktemp("ui"))


def _copy(gallery: Gallery, name: str) -> Gallery:
    """The same collection in another Lite file (a Lite file is owned by one process)."""
    db = gallery.root / f"{name}.db"
    if not db.exists():
        shutil.copyfile(gallery.db, db)
    return Gallery(root=gallery.root, db=db, collection=gallery.collection,
                   checkpoint=gallery.checkpoint, count=gallery.count,
                   query_image=gallery.query_image)


@pytest.fixture(scope="session")
def ui_server(ui_gallery: Gallery) -> Iterator[Server]:
    """``mmrag serve`` over the gallery, no API key (queries capped at 200 characters)."""
    with serving(_copy(ui_gallery, "open"), ui_gallery.root / "serve-open.log") as server:
        yield server


@pytest.fixture(scope="module")
def ui_key_server(ui_gallery: Gallery) -> Iterator[Server]:
    """``mmrag serve`` over a copy of the gallery, with MMRAG_API_KEY set."""
    log = ui_gallery.root / "serve-key.log"
    with serving(_copy(ui_gallery, "keyed"), log, MMRAG_API_KEY=API_KEY) as server:
        yield server


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One headless Chromium per module (fresh profile); skips when it is not installed."""
    reason = browser_missing()
    if reason:
        pytest.skip(reason)
    profile = tmp_path_factory.mktemp("chromium") / "profile"
    profile.mkdir()
    with chromium(profile) as driver:
        yield driver


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """The browser at desktop size with a clean slate (storage cleared after the test)."""
    set_viewport(browser, DESKTOP)
    browser.get_log("browser")  # drop earlier console output
    yield browser
    if browser.current_url.startswith("http"):
        browser.execute_script("sessionStorage.clear(); localStorage.clear();")
    browser.get("about:blank")


@pytest.fixture
def ui_output(request: pytest.FixtureRequest) -> Path:
    """tests/ui/output/<test name>/ for screenshots (ignored by git)."""
    return output_dir(request.node.name)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """UI tests are slow (a browser and a server)."""
    for item in items:
        if "tests/ui/" in item.nodeid.replace("\\", "/"):
            item.add_marker(pytest.mark.slow)
