"""Headless Chromium (Debian's ``chromium``) driven over the DevTools protocol, for page tests.

Why the DevTools protocol rather than selenium: it needs no Python package beyond ``websockets``
(already here) and no driver process whose version must match the browser, and it does directly
what a phone screenshot needs — device-metrics emulation (a 390 px wide, touch, 2x screen) and a
full-page capture — which selenium reaches only through the same protocol (``execute_cdp_cmd``).
"""

from __future__ import annotations

import base64
import itertools
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

import pytest
from websockets.sync.client import ClientConnection, connect

__all__ = ["Page", "chromium_page"]


def _browser() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("CI") == "true":
        pytest.fail("chromium is missing: .ci/setup installs it")
    pytest.skip("chromium is not installed")


class Page:
    """One browser tab, reached through a flattened DevTools session."""

    def __init__(self, ws: ClientConnection, session: str) -> None:
        self._ws = ws
        self._session = session
        self._ids = itertools.count(1)

    def call(self, method: str, timeout: float = 30.0, **params: Any) -> dict[str, Any]:
        return _call(self._ws, self._ids, method, params, self._session, timeout)

    def wait_event(self, method: str, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = json.loads(self._ws.recv(timeout=max(0.01, deadline - time.monotonic())))
            if message.get("method") == method:
                return dict(message.get("params", {}))
        raise TimeoutError(method)

    def phone(self, width: int = 390, height: int = 844, scale: float = 2.0) -> None:
        self.call(
            "Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=scale, mobile=True
        )
        self.call("Emulation.setTouchEmulationEnabled", enabled=True)

    def open(self, url: str) -> None:
        self.call("Page.enable")
        self.call("Page.navigate", url=url)
        self.wait_event("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    def screenshot(self, path: Path) -> bytes:
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
        png = base64.b64decode(data)
        path.write_bytes(png)
        return png


def _call(
    ws: ClientConnection, ids: Iterator[int], method: str, params: dict[str, Any], session: str | None, timeout: float
) -> dict[str, Any]:
    call_id = next(ids)
    message: dict[str, Any] = {"id": call_id, "method": method, "params": params}
    if session:
        message["sessionId"] = session
    ws.send(json.dumps(message))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reply = json.loads(ws.recv(timeout=max(0.01, deadline - time.monotonic())))
        if reply.get("id") == call_id:
            if "error" in reply:
                raise RuntimeError(f"{method}: {reply['error']}")
            return dict(reply["result"])
    raise TimeoutError(method)


@contextmanager
def chromium_page(profile: Path) -> Iterator[Page]:
    cmd = [
        _browser(), "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--no-first-run", "--disable-extensions", "--hide-scrollbars", "--remote-debugging-port=0",
        f"--user-data-dir={profile}", "about:blank",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        endpoint = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and endpoint is None:
            line = proc.stderr.readline()
            if not line and proc.poll() is not None:
                break
            found = re.search(r"DevTools listening on (ws://\S+)", line)
            endpoint = found.group(1) if found else None
        assert endpoint, "chromium did not open its DevTools endpoint"
        with connect(endpoint, max_size=64 * 1024 * 1024, open_timeout=30) as ws:
            ids = itertools.count(10_000)
            target = _call(ws, ids, "Target.createTarget", {"url": "about:blank"}, None, 30)["targetId"]
            session = _call(ws, ids, "Target.attachToTarget", {"targetId": target, "flatten": True}, None, 30)
            yield Page(ws, session["sessionId"])
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        if proc.stderr is not None:
            proc.stderr.close()
