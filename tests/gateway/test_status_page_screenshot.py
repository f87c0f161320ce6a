"""The status page as a technician's phone shows it: headless Chromium at 390 px wide renders the
page of a real ``gateway run`` with one dead meter. The banner must name that meter; nothing may
overflow the screen sideways. The screenshot is what README.md shows (docs/img/status-page.png):
``GRIDTOKENX_UPDATE_SCREENSHOTS=1`` rewrites it."""

from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path

import pytest

from tests.gateway.gw_daemon import running_daemon, wait_until
from tests.support import fixtures
from tests.support.chromium import chromium_page
from tests.support.mosquitto import Mosquitto

pytestmark = [pytest.mark.broker, pytest.mark.modbus, pytest.mark.tool]
broker = fixtures.broker

README_IMAGE = Path(__file__).resolve().parents[2] / "docs" / "img" / "status-page.png"


def test_phone_screenshot_banner_names_the_dead_meter(tmp_path: Path, broker: Mosquitto) -> None:
    with running_daemon(tmp_path, broker, sims={"a": [1, 2], "b": [3]}, interval=1.0) as d:
        wait_until("healthz 200", lambda: d.get("/healthz")[0] == 200, 30, d.gateway.log)
        d.kill_sim("b")
        wait_until("m3 offline", lambda: "Meter m3 is offline" in d.get("/healthz")[1], 30, d.gateway.log)
        with chromium_page(tmp_path / "profile") as page:
            page.phone(width=390, height=844, scale=2)
            page.open(f"http://127.0.0.1:{d.status_port}/")
            banner = page.evaluate("document.querySelector('header.banner').innerText")
            assert "Meter m3 is offline" in banner, banner
            assert "m1" not in banner and "m2" not in banner
            colour = page.evaluate("getComputedStyle(document.querySelector('header.banner')).backgroundColor")
            assert colour == "rgb(185, 28, 28)", colour  # red: something is wrong
            assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scrolling
            states = page.evaluate(
                "[...document.querySelectorAll('article.meter')].map(a => a.querySelector('h3').innerText)"
            )
            assert [s.split()[0] for s in states] == ["m1", "m2", "m3"] and "OFFLINE" in states[2]
            shot = tmp_path / "status-page.png"
            png = page.screenshot(shot)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert width == 390 * 2 and height > 844, (width, height)
    if os.environ.get("GRIDTOKENX_UPDATE_SCREENSHOTS") == "1":
        README_IMAGE.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, README_IMAGE)
    assert README_IMAGE.exists(), "README's screenshot is missing: run this test with GRIDTOKENX_UPDATE_SCREENSHOTS=1"
