"""A small WebDriver BiDi client for Debian's Firefox ESR (no geckodriver, nothing downloaded).

Firefox speaks WebDriver BiDi itself (``--remote-debugging-port``), so the UI can be driven in
real Firefox with a websocket: navigate, run scripts, send real key and pointer input, set
the files of a file input and take screenshots. Debian packages no geckodriver, and Selenium
would need one (or Selenium Manager, which downloads); this needs neither.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

FIREFOX = os.environ.get("MMRAG_UI_FIREFOX", "/usr/bin/firefox-esr")
START_TIMEOUT_S = 60.0
KEYS = {"ENTER": "\ue007", "TAB": "\ue004", "ESCAPE": "\ue00c"}
PREFS = {
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.homepage_override.mstone": "ignore",
    "datareporting.policy.dataSubmissionEnabled": False,
    "toolkit.telemetry.reportingpolicy.firstRun": False,
    "app.update.disabledForTesting": True,
    "browser.safebrowsing.update.enabled": False,
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "extensions.update.enabled": False,
    "network.proxy.type": 0,
    "intl.accept_languages": "en-US",
    # Tab reaches every control on every platform (as the keyboard checks expect).
    "accessibility.tabfocus": 7,
}


def firefox_missing() -> str | None:
    """Why Firefox tests cannot run here (None when they can)."""
    if not os.access(FIREFOX, os.X_OK):
        return f"Firefox ESR not installed ({FIREFOX}); apt-get install firefox-esr"
    try:
        import websocket  # noqa: F401
    except ImportError:
        return "websocket-client is not installed (it comes with selenium)"
    return None


class BiDiError(AssertionError):
    """A BiDi command failed."""


class Firefox:
    """One browsing context of a BiDi session."""

    def __init__(self, url: str) -> None:
        import websocket

        self.ws = websocket.create_connection(url, timeout=60, suppress_origin=True)
        self._id = 0
        self.logs: list[dict[str, Any]] = []
        self.call("session.new", {"capabilities": {"alwaysMatch": {"acceptInsecureCerts": True}}})
        self.call("session.subscribe", {"events": ["log.entryAdded"]})
        contexts = self.call("browsingContext.getTree", {})["contexts"]
        self.context = contexts[0]["context"]

    # ----- protocol ------------------------------------------------------------------------

    def call(self, method: str, params: dict[str, Any]) -> Any:
        """Send one command and return its result (events met meanwhile are kept)."""
        self._id += 1
        ident = self._id
        self.ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("type") == "event":
                if message.get("method") == "log.entryAdded":
                    self.logs.append(message["params"])
                continue
            if message.get("id") != ident:
                continue
            if message.get("type") == "error":
                raise BiDiError(f"{method}: {message.get('error')}: {message.get('message')}")
            return message.get("result")

    def close(self) -> None:
        """Close the browser (which ends the session) and the socket."""
        with contextlib.suppress(Exception):  # the browser may already be gone
            self.call("browser.close", {})
        self.ws.close()

    # ----- page ------------------------------------------------------------------------------

    def viewport(self, width: int, height: int, pixel_ratio: float = 1.0) -> None:
        """Set the page's viewport in CSS pixels."""
        self.call("browsingContext.setViewport", {
            "context": self.context, "viewport": {"width": width, "height": height},
            "devicePixelRatio": pixel_ratio,
        })

    def navigate(self, url: str) -> None:
        """Load a URL and wait for the load event."""
        self.call("browsingContext.navigate",
                  {"context": self.context, "url": url, "wait": "complete"})

    def preload(self, function: str) -> None:
        """Run a function declaration in every document before its own scripts."""
        self.call("script.addPreloadScript", {"functionDeclaration": function})

    def js(self, body: str, *args: Any) -> Any:
        """Run ``body`` (a function body that sees ``args``) in the page; its JSON result."""
        expression = (
            f"(async (...args) => JSON.stringify(await (async function() {{ {body} }})"
            f".apply(null, args) ?? null))(...{json.dumps(list(args))})"
        )
        result = self.call("script.evaluate", {
            "expression": expression, "target": {"context": self.context},
            "awaitPromise": True, "resultOwnership": "none",
        })
        if result.get("type") == "exception":
            details = result.get("exceptionDetails", {})
            raise BiDiError(f"script failed: {details.get('text')}")
        value = result["result"].get("value")
        return None if value is None else json.loads(value)

    def node(self, selector: str) -> dict[str, str]:
        """A shared reference to the first element matching selector."""
        result = self.call("script.evaluate", {
            "expression": f"document.querySelector({json.dumps(selector)})",
            "target": {"context": self.context}, "awaitPromise": False,
            "resultOwnership": "none",
        })
        value = result.get("result", {})
        if value.get("type") != "node":
            raise BiDiError(f"no element {selector!r}")
        return {"sharedId": value["sharedId"]}

    def wait(self, body: str, *args: Any, timeout: float = 30.0, what: str = "") -> Any:
        """Poll a script until it returns something truthy."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.js(body, *args)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what or body}")
            time.sleep(0.1)

    # ----- input -----------------------------------------------------------------------------

    def click(self, selector: str) -> None:
        """A real mouse click in the middle of an element (scrolled into view first)."""
        self.js("document.querySelector(args[0]).scrollIntoView({block: 'center'})", selector)
        element = self.node(selector)
        self.call("input.performActions", {"context": self.context, "actions": [{
            "type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"},
            "actions": [
                {"type": "pointerMove", "x": 0, "y": 0,
                 "origin": {"type": "element", "element": element}},
                {"type": "pointerDown", "button": 0},
                {"type": "pointerUp", "button": 0},
            ],
        }]})
        self.call("input.releaseActions", {"context": self.context})

    def type(self, text: str) -> None:
        """Real key presses into the focused element (KEYS values for special keys)."""
        actions = []
        for char in text:
            actions += [{"type": "keyDown", "value": char}, {"type": "keyUp", "value": char}]
        self.call("input.performActions", {"context": self.context, "actions": [
            {"type": "key", "id": "keyboard", "actions": actions}]})
        self.call("input.releaseActions", {"context": self.context})

    def set_files(self, selector: str, *paths: Path) -> None:
        """Choose files in a file input (fires input and change like a user's choice)."""
        self.call("input.setFiles", {"context": self.context, "element": self.node(selector),
                                     "files": [str(p) for p in paths]})

    def screenshot(self, path: Path) -> Path:
        """Save the viewport as PNG."""
        data = self.call("browsingContext.captureScreenshot", {"context": self.context})["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def errors(self) -> list[str]:
        """Console errors and uncaught exceptions logged so far."""
        return [str(entry.get("text")) for entry in self.logs if entry.get("level") == "error"]


@contextmanager
def firefox(profile: Path) -> Iterator[Firefox]:
    """Headless Firefox ESR with a fresh profile, driven over WebDriver BiDi."""
    profile.mkdir(parents=True, exist_ok=True)
    prefs = "".join(f"user_pref({json.dumps(k)}, {json.dumps(v)});\n" for k, v in PREFS.items())
    (profile / "user.js").write_text(prefs)
    log = profile.parent / "firefox.log"
    env = {**os.environ, "MOZ_HEADLESS": "1", "MOZ_CRASHREPORTER_DISABLE": "1"}
    with open(log, "wb") as sink:
        process = subprocess.Popen(
            [FIREFOX, "--headless", "--no-remote", "--profile", str(profile),
             "--remote-debugging-port", "0", "about:blank"],
            stdout=sink, stderr=subprocess.STDOUT, env=env,
        )
    browser = None
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            found = re.search(r"WebDriver BiDi listening on (ws://\S+)", log.read_text("utf-8",
                                                                                      "replace"))
            if found:
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"Firefox did not start:\n{log.read_text()}")
            time.sleep(0.1)
        browser = Firefox(found.group(1).rstrip("/") + "/session")
        yield browser
    finally:
        if browser is not None:
            browser.close()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        shutil.rmtree(profile, ignore_errors=True)
