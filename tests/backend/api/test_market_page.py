"""The market page in headless Chromium (Debian chromium + chromium-driver) with a test wallet
injected through the Wallet Standard: sign in, see the book, buy part of an order, place an order,
and watch it fill live when someone else buys it. Phone-sized window.

Set GRIDTOKENX_SCREENSHOT=docs/market-page.png to refresh the README's screenshot.
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.backend.api.api_support import RunningApi, TestWallet, running_api
from tests.backend.api.test_api_market import KWH, PRICE, THBC, issue_thbc, registered, seed_grid
from tests.support.fixtures import pg_url  # noqa: F401

pytestmark = [pytest.mark.postgres, pytest.mark.chain, pytest.mark.tool]
WALLET_JS = (Path(__file__).parent / "test_wallet_wallet.js").read_text()


def _browser_tools() -> tuple[str, str]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium and driver:
        return chromium, driver
    if os.environ.get("CI"):
        pytest.fail("chromium / chromium-driver missing: .ci/setup installs them")
    pytest.skip("chromium / chromium-driver not installed (apt-get install chromium chromium-driver)")


@pytest.fixture
async def api(pg_url: str, tmp_path: Path) -> AsyncIterator[RunningApi]:  # noqa: F811
    async with running_api(pg_url, tmp_path) as running:
        yield running


@pytest.fixture
def browser(tmp_path: Path) -> Any:
    chromium, driver_path = _browser_tools()
    os.environ.setdefault("SE_OFFLINE", "true")  # selenium must not try to download a driver
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=412,1400",
                f"--user-data-dir={tmp_path / 'chromium'}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver_path))
    try:
        yield driver
    finally:
        driver.quit()


async def until(browser: Any, script: str, what: str, within: float = 20) -> Any:
    """Poll a JavaScript expression in the page (in a thread: the server runs in this event loop)."""
    deadline = time.monotonic() + within
    value = None
    while time.monotonic() < deadline:
        value = await asyncio.to_thread(browser.execute_script, f"return ({script});")
        if value:
            return value
        await asyncio.sleep(0.2)
    status = await asyncio.to_thread(browser.execute_script, "return document.getElementById('status').textContent")
    raise AssertionError(f"timed out waiting for {what}; last value {value!r}; page status {status!r}")


def call(browser: Any, script: str, *args: Any) -> Callable[[], Any]:
    return lambda: browser.execute_script(script, *args)


async def test_sign_in_see_the_book_trade_and_watch_it_live(api: RunningApi, browser: Any, tmp_path: Path) -> None:
    other_seller = await registered(api, "prosumer", "Hillside Solar")
    await seed_grid(api, other_seller, 5 * KWH)
    theirs = (await other_seller.act(api.http, "POST", "/orders", {"amount": 2 * KWH, "price": PRICE}))["details"]
    me = await registered(api, "prosumer", "Browser Prosumer")  # the wallet the browser holds
    await seed_grid(api, me, 3 * KWH)
    await issue_thbc(api, me, 50 * THBC, "DEP-PAGE-1")
    buyer = await registered(api, "consumer", "Corner Cafe")
    await issue_thbc(api, buyer, 100 * THBC, "DEP-PAGE-2")

    await asyncio.to_thread(browser.get, api.url + "/")
    await until(browser, "document.querySelector('#book tbody tr')", "the order book")
    seed, public = bytes(me.key)[:32], bytes(me.key.pubkey())
    await asyncio.to_thread(call(browser, WALLET_JS, base64.b64encode(seed).decode(),
                                 base64.b64encode(public).decode(), me.address))
    await until(browser, "!document.getElementById('signin').disabled", "the wallet to be found")
    await asyncio.to_thread(call(browser, "document.getElementById('signin').click()"))
    who = await until(browser, "document.getElementById('who').textContent", "sign-in")
    assert who.startswith(me.address[:4])

    # the book: the other seller's order, with a Buy button now that we are signed in
    row = f"document.querySelector('#book tr[data-order=\"{theirs['order']}\"]')"
    await until(browser, f"{row} && {row}.querySelector('button.buy')", "a buyable order in the book")
    await asyncio.to_thread(call(browser, f"{row}.querySelector('input').value = '0.5'; "
                                          f"{row}.querySelector('button.buy').click();"))
    await until(browser, "document.getElementById('balances').textContent.includes('GRID 3.500')",
                "GRID bought to arrive")
    order = (await api.http.get(f"/orders/{theirs['order']}")).json()
    assert order["state"] == "PARTIALLY_FILLED" and order["remaining"] == int(1.5 * KWH)

    # place a sell order from the page
    await asyncio.to_thread(call(browser, "document.getElementById('sell-kwh').value = '2';"
                                          "document.getElementById('sell-price').value = '4.2';"
                                          "document.querySelector('#sell button').click();"))
    mine_row = "document.querySelector('#my-orders tbody tr')"
    await until(browser, f"{mine_row} && {mine_row}.textContent.includes('ACTIVE')", "my order to show")
    [placed] = (await api.http.get("/orders/mine", headers=(await _session(api, me)))).json()["items"]
    assert placed["amount"] == 2 * KWH and placed["price"] == 4_200_000
    signed_by_page = await asyncio.to_thread(call(browser, "return window.__testWallet.signed.length"))
    assert signed_by_page == 2  # the buy and the sell: the page asked the wallet, nothing else signed

    # someone else fills it: the page updates live, without a reload
    await buyer.act(api.http, "POST", f"/orders/{placed['address']}/buy", {})
    await until(browser, f"{mine_row}.textContent.includes('FILLED')", "the fill to arrive live")
    await until(browser, "[...document.querySelectorAll('#live li')].some(li => li.textContent.includes("
                         "'trade_executed'))", "the trade in the live list")
    await until(browser, "document.querySelectorAll('#trades tbody tr').length === 2", "both trades listed")

    shot = Path(os.environ.get("GRIDTOKENX_SCREENSHOT") or tmp_path / "market.png")
    await asyncio.to_thread(browser.save_screenshot, str(shot))
    assert (await asyncio.to_thread(shot.read_bytes))[:8] == b"\x89PNG\r\n\x1a\n"


async def _session(api: RunningApi, wallet: TestWallet) -> dict[str, str]:
    await wallet.sign_in(api.http)
    return wallet.headers()
