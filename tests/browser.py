"""Headless Chromium for tests, driven over the Chrome DevTools Protocol with websocket-client.

Why not Playwright: it brings its own Node driver and expects a browser build of its own version; Debian's
`chromium` package speaks the same protocol, and the few commands the report's test needs (open a page,
collect console messages and network requests, evaluate a script, take a screenshot, ask which font
rendered a node) are stable CDP methods. The browser runs with a throw-away profile and is stopped by the
context manager.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websocket import WebSocket, WebSocketTimeoutException, create_connection

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def find_chromium() -> str | None:
    return next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)


class BrowserError(RuntimeError):
    pass


@dataclass
class Visit:
    """What one page did while it loaded: console messages, uncaught exceptions, log errors, requests."""

    url: str
    console: list[dict[str, Any]] = field(default_factory=list)
    exceptions: list[dict[str, Any]] = field(default_factory=list)
    log_errors: list[dict[str, Any]] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[str]:
        return ([f"console.{m['type']}: {m['args']}" for m in self.console if m["type"] in ("error", "assert")]
                + [f"exception: {e['exceptionDetails'].get('text')}" for e in self.exceptions]
                + [f"log: {e['entry'].get('text')}" for e in self.log_errors])


class Page:
    """One tab, attached with a flat session over the browser's websocket."""

    def __init__(self, browser: Browser, session: str) -> None:
        self.browser, self.session = browser, session

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        return self.browser.send(method, params, session=self.session)

    def open(self, url: str, *, timeout: float = 30) -> Visit:
        """Navigate and wait for the load event; the visit records what happened meanwhile."""
        visit = Visit(url)
        self.browser.events.clear()
        self.send("Page.navigate", url=url)
        deadline = time.monotonic() + timeout
        while not any(e["method"] == "Page.loadEventFired" for e in self.browser.events):
            if time.monotonic() > deadline:
                raise BrowserError(f"{url}: no load event in {timeout} s")
            self.browser.read_one(deadline)
        time.sleep(0.2)  # messages logged right at the load event arrive just after it
        self.browser.drain()
        for e in self.browser.events:
            if e.get("sessionId") != self.session:
                continue
            p = e["params"]
            if e["method"] == "Runtime.consoleAPICalled":
                visit.console.append({"type": p["type"], "args": [a.get("value") for a in p.get("args", [])]})
            elif e["method"] == "Runtime.exceptionThrown":
                visit.exceptions.append(p)
            elif e["method"] == "Log.entryAdded" and p["entry"]["level"] == "error":
                visit.log_errors.append(p)
            elif e["method"] == "Network.requestWillBeSent":
                visit.requests.append(p["request"]["url"])
        return visit

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression[:60]}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path: Path) -> Path:
        shot = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def fonts_of(self, selector: str) -> list[str]:
        """The font families that actually drew the text of the first node matching selector."""
        root = self.send("DOM.getDocument")["root"]["nodeId"]
        node = self.send("DOM.querySelector", nodeId=root, selector=selector)["nodeId"]
        if not node:
            raise BrowserError(f"no node matches {selector}")
        fonts = self.send("CSS.getPlatformFontsForNode", nodeId=node)["fonts"]
        return [f["familyName"] for f in fonts if f.get("glyphCount", 0) > 0]


class Browser:
    def __init__(self, ws: WebSocket, process: subprocess.Popen[bytes]) -> None:
        self.ws, self.process = ws, process
        self.events: list[dict[str, Any]] = []
        self._next = 0

    def send(self, method: str, params: dict[str, Any] | None = None, *, session: str | None = None,
             timeout: float = 30) -> dict[str, Any]:
        self._next += 1
        message: dict[str, Any] = {"id": self._next, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self.ws.send(json.dumps(message))
        deadline = time.monotonic() + timeout
        while True:
            reply = self.read_one(deadline)
            if reply is not None and reply.get("id") == self._next:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return dict(reply.get("result", {}))

    def read_one(self, deadline: float) -> dict[str, Any] | None:
        """One message; events are kept in self.events, a reply is returned."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise BrowserError("the browser did not answer in time")
        self.ws.settimeout(left)
        message = json.loads(self.ws.recv())
        if "method" in message:
            self.events.append(message)
            return None
        return dict(message)

    def drain(self) -> None:
        self.ws.settimeout(0.05)
        try:
            while True:
                message = json.loads(self.ws.recv())
                if "method" in message:
                    self.events.append(message)
        except WebSocketTimeoutException:  # nothing more waiting
            return

    def new_page(self, *, width: int = 1100, height: int = 900) -> Page:
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, session)
        for domain in ("Page", "Runtime", "Log", "Network", "DOM", "CSS"):
            page.send(f"{domain}.enable")
        page.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
        return page


@contextmanager
def chromium(executable: str, profile: Path, *, timeout: float = 30) -> Iterator[Browser]:
    """A headless Chromium on a random local debugging port (from its DevToolsActivePort file)."""
    profile.mkdir(parents=True, exist_ok=True)
    args = [executable, "--headless=new", "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
            f"--user-data-dir={profile}", "--no-first-run", "--no-default-browser-check", "--disable-gpu",
            "--disable-extensions", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--disable-dev-shm-usage", "about:blank"]
    if os.geteuid() == 0:  # Chromium refuses to run as root with its sandbox (CI containers run as root)
        args.insert(1, "--no-sandbox")
    log = profile / "chromium.log"  # a file, not a pipe nobody reads: Chromium's chatter must not block it
    with log.open("wb") as err:
        process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err)
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while not (port_file.exists() and len(port_file.read_text().splitlines()) >= 2):
            if process.poll() is not None:
                raise BrowserError(f"chromium exited with {process.returncode}: "
                                   f"{log.read_text(errors='replace')[-2000:]}")
            if time.monotonic() > deadline:
                raise BrowserError(f"chromium wrote no DevToolsActivePort in {timeout} s")
            time.sleep(0.1)
        port, path = port_file.read_text().splitlines()[:2]
        ws = create_connection(f"ws://127.0.0.1:{port}{path}", timeout=timeout, suppress_origin=True)
        try:
            yield Browser(ws, process)
        finally:
            ws.close()
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
