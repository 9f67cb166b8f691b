"""Browser-test support: a demo gallery in Milvus Lite, ``mmrag serve`` on loopback, Chromium.

Chromium and chromedriver are Debian's (``/usr/bin/chromium``, ``/usr/bin/chromedriver``;
``scripts/install-browser.sh`` installs them). Nothing downloads a browser: the driver path is
given explicitly and Selenium Manager is made to fail loudly if anything calls it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest

from tests.api.helpers import free_port

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("MMRAG_UI_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("MMRAG_UI_CHROMEDRIVER", "/usr/bin/chromedriver")
# Development only, while the shipped mmrag-demo weights are being trained: other weights for
# the mmrag-demo model. Unset (CI), the tests use the shipped checkpoint.
CHECKPOINT_ENV = "MMRAG_UI_TEST_CHECKPOINT"
OUTPUT_DIR = Path(os.environ.get("MMRAG_UI_OUTPUT", REPO / "tests" / "ui" / "output"))
DOCS_IMAGES = REPO / "docs" / "images"
UPDATE_DOCS_ENV = "MMRAG_UI_UPDATE_DOCS"  # =1: also write docs/images/search.png, chat.png
GALLERY_SIZE = 60
GALLERY_SEED = 11
START_TIMEOUT_S = 120.0
DESKTOP = (1280, 900)
PHONE = (390, 844)
CHROME_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--no-proxy-server",
    "--no-default-browser-check",
    "--disable-extensions",
    "--lang=en-US",
)


def browser_missing() -> str | None:
    """Why the browser tests cannot run here (None when they can)."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        return (
            f"Debian chromium/chromium-driver not installed ({', '.join(missing)} missing); "
            "run scripts/install-browser.sh as root"
        )
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install selenium)"
    return None


def demo_checkpoint() -> Path | None:
    """The mmrag-demo weights the tests serve: the shipped ones, or the development override."""
    override = os.environ.get(CHECKPOINT_ENV)
    if override:
        return Path(override)
    from retrieval.demo.paths import WEIGHTS_PATH

    if not WEIGHTS_PATH.is_file():
        pytest.skip(f"the shipped mmrag-demo weights are not built yet ({WEIGHTS_PATH})")
    return None


@dataclass(frozen=True)
class Gallery:
    """A demo collection in a Lite file and what it holds."""

    root: Path
    db: Path
    collection: str
    checkpoint: Path | None
    count: int
    query_image: Path  # not in the gallery: a blue square


def build_gallery(root: Path, count: int = GALLERY_SIZE) -> Gallery:
    """Write ``count`` synthetic images and ingest them with mmrag-demo into root/ui.db."""
    from ingest.job import IngestOptions, run_ingest
    from ingest.sources import open_source
    from retrieval.components import build_components
    from retrieval.config import Settings
    from retrieval.demo.synthetic import render_scene, write_dataset

    checkpoint = demo_checkpoint()
    manifest = write_dataset(root / "gallery", count, seed=GALLERY_SEED)
    settings = Settings.model_validate({  # the environment's MMRAG_* play no part
        "uri": str(root / "ui.db"), "collection": "demo", "model": "mmrag-demo",
        "pretrained": None, "checkpoint": checkpoint, "device": "cpu", "batch_size": 32,
    })
    components = build_components(settings)
    try:
        summary = run_ingest(components, open_source(manifest), IngestOptions(batch_size=32))
        assert summary.ingested == count, summary.rejects
    finally:
        components.close()
    query = root / "query-blue-square.png"
    image = render_scene("blue", "square", np.random.default_rng(5), size=128)
    assert cv2.imwrite(str(query), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return Gallery(root=root, db=root / "ui.db", collection="demo", checkpoint=checkpoint,
                   count=count, query_image=query)


@dataclass
class Server:
    """A running ``mmrag serve``."""

    base: str
    process: subprocess.Popen[bytes]
    log: Path


def serve_env(gallery: Gallery, **extra: str) -> dict[str, str]:
    """The server's environment: MMRAG_* for the gallery, nothing inherited."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMRAG_")}
    env.update(
        MMRAG_URI=str(gallery.db),
        MMRAG_COLLECTION=gallery.collection,
        MMRAG_MODEL="mmrag-demo",
        MMRAG_PRETRAINED="",
        MMRAG_DEVICE="cpu",
        MMRAG_THUMBNAIL_DIR=str(gallery.root / "thumbs"),
        MMRAG_LOG_LEVEL="warning",
        MMRAG_MAX_QUERY_CHARS="200",
        PYTHONUNBUFFERED="1",
    )
    if gallery.checkpoint is not None:
        env["MMRAG_CHECKPOINT"] = str(gallery.checkpoint)
    env.update(extra)
    return env


@contextmanager
def serving(gallery: Gallery, log: Path, **extra_env: str) -> Iterator[Server]:
    """``python -m mmrag serve`` on a free loopback port, ready; killed on exit."""
    port = free_port()
    with open(log, "wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "mmrag", "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO, env=serve_env(gallery, **extra_env), stdout=sink, stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    headers = {"X-API-Key": extra_env["MMRAG_API_KEY"]} if "MMRAG_API_KEY" in extra_env else {}
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        with httpx.Client(base_url=base, timeout=5.0, trust_env=False, headers=headers) as probe:
            while True:
                if process.poll() is not None:
                    pytest.fail(f"mmrag serve exited {process.returncode}:\n{log.read_text()}")
                try:
                    if probe.get("/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"mmrag serve not ready in time:\n{log.read_text()}")
                time.sleep(0.2)
        yield Server(base=base, process=process, log=log)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


def _forbid_selenium_manager() -> None:
    """Make any Selenium Manager call (it would download a browser or driver) fail loudly."""
    from selenium.webdriver.common.selenium_manager import SeleniumManager

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("Selenium Manager must not run: pass the Debian chromedriver path")

    SeleniumManager.binary_paths = refuse  # type: ignore[method-assign]


@contextmanager
def chromium(profile: Path, size: tuple[int, int] = DESKTOP) -> Iterator[Any]:
    """A headless Debian Chromium driven by Debian's chromedriver, with a fresh profile."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")
    os.environ.setdefault("SE_AVOID_BROWSER_DOWNLOAD", "true")
    _forbid_selenium_manager()
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={size[0]},{size[1]}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=CHROMEDRIVER, log_output=str(profile.parent / "driver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    try:
        driver.set_page_load_timeout(30)
        driver.set_script_timeout(30)
        yield driver
    finally:
        driver.quit()


def set_viewport(driver: Any, size: tuple[int, int], *, mobile: bool = False) -> None:
    """Make the page's viewport exactly ``size`` CSS pixels (a phone: mobile, 3x pixels)."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": size[0], "height": size[1], "deviceScaleFactor": 3 if mobile else 1,
        "mobile": mobile,
    })
    driver.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": mobile})


def output_dir(name: str) -> Path:
    """tests/ui/output/<name> (ignored by git), created fresh."""
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    ignore = OUTPUT_DIR / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n")
    folder = OUTPUT_DIR / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def publish_screenshot(path: Path, name: str) -> None:
    """Copy a screenshot into docs/images/<name> when MMRAG_UI_UPDATE_DOCS=1."""
    if os.environ.get(UPDATE_DOCS_ENV) == "1":
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_IMAGES / name)


# ----- page helpers (Selenium) ----------------------------------------------------------------

THUMBS_LOADED_JS = """
const imgs = [...document.querySelectorAll(arguments[0])].slice(0, arguments[1]);
return imgs.length >= arguments[1] && imgs.every((i) => i.complete && i.naturalWidth > 0);
"""


def wait_for(driver: Any, condition: Any, timeout: float = 30.0, message: str = "") -> Any:
    """WebDriverWait(...).until(condition) with a message naming what was awaited."""
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(condition, message)


def wait_thumbnails(driver: Any, selector: str, count: int, timeout: float = 30.0) -> None:
    """Wait until the first ``count`` images matching selector have loaded (naturalWidth > 0)."""
    wait_for(
        driver, lambda d: d.execute_script(THUMBS_LOADED_JS, selector, count), timeout,
        f"{count} loaded images for {selector!r}",
    )


def open_page(driver: Any, server: Server, hash_: str = "") -> None:
    """Load the UI and wait until its script ran."""
    driver.get(f"{server.base}/{hash_}")
    wait_for(driver, lambda d: d.execute_script("return document.body.dataset.ready === 'true'"),
             15, "the page script to start")


def wait_collection(driver: Any, count: int) -> None:
    """Wait until the header shows the collection's size."""
    wait_for(driver, lambda d: f"{count} items" in d.find_element("id", "collection-info").text,
             30, "the collection summary")


def result_cards(driver: Any) -> list[dict[str, Any]]:
    """Every result card: id, caption (alt text), score text, image state."""
    return list(driver.execute_script("""
        return [...document.querySelectorAll('#results .card')].map((card) => {
          const img = card.querySelector('img');
          return {id: card.dataset.id, alt: img.alt, src: img.getAttribute('src') || '',
                  caption: card.querySelector('.card-caption').textContent,
                  score: card.querySelector('.score').textContent,
                  loaded: img.complete && img.naturalWidth > 0};
        });"""))


def search_idle(driver: Any) -> bool:
    """No search in flight."""
    return bool(driver.execute_script(
        "return document.getElementById('results').getAttribute('aria-busy') === 'false'"
    ))


def console_errors(driver: Any, *, http_errors_expected: bool = False) -> list[str]:
    """SEVERE browser console entries since the last call (CSP violations, script errors).

    With ``http_errors_expected``, "Failed to load resource" lines (a 4xx the test provoked on
    purpose) are left out.
    """
    out = []
    for entry in driver.get_log("browser"):
        message = str(entry.get("message", ""))
        if entry.get("level") != "SEVERE":
            continue
        if http_errors_expected and "Failed to load resource" in message:
            continue
        out.append(message)
    return out


def screenshot(driver: Any, path: Path) -> Path:
    """Save the viewport as PNG (no focus ring from the last click)."""
    driver.execute_script("document.activeElement && document.activeElement.blur()")
    assert driver.save_screenshot(str(path)), path
    return path
