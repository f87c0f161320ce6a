"""/ws over a real WebSocket, fed by the backend's indexer through its live feed (in-process, and Redis
between processes): live events filtered by wallet, and a reconnecting client resumes from the last event
id it saw without a gap or a duplicate."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import websockets
from nacl.signing import SigningKey
from solders.keypair import Keypair

from backend.feed import RejectionNotices
from backend.ingest.pipeline import Ingest
from gridtokenx.batch import encode_batch
from gridtokenx.reading import Reading, sign
from tests.backend.api.api_support import RunningApi, running_api
from tests.backend.api.test_api_market import KWH, PRICE, THBC, issue_thbc, registered, seed_grid
from tests.support.fixtures import pg_url  # noqa: F401

pytestmark = [pytest.mark.postgres, pytest.mark.chain]


@pytest.fixture(params=["in-process", "redis"])
async def api(request: pytest.FixtureRequest, pg_url: str, tmp_path: Path) -> AsyncIterator[RunningApi]:  # noqa: F811
    prefix = f"gtx-test-{uuid.uuid4().hex[:10]}" if request.param == "redis" else None
    async with running_api(pg_url, tmp_path, redis_prefix=prefix) as running:
        yield running


async def _until_ready(ws: Any) -> list[dict[str, Any]]:
    events = []
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if message.get("type") == "ready":
            return events
        events.append(message)


async def _next(ws: Any, n: int) -> list[dict[str, Any]]:
    return [json.loads(await asyncio.wait_for(ws.recv(), 10)) for _ in range(n)]


async def test_live_events_filtered_by_wallet_and_resumed_without_gaps(api: RunningApi) -> None:
    seller = await registered(api, "prosumer", "Seller")
    buyer = await registered(api, "consumer", "Buyer")
    bystander = await registered(api, "consumer", "Bystander")
    await seed_grid(api, seller, 5 * KWH)
    await issue_thbc(api, buyer, 100 * THBC, "DEP-WS")
    ws_url = api.url.replace("http://", "ws://") + "/ws"

    async with websockets.connect(f"{ws_url}?wallet={buyer.address}") as buyer_ws, \
            websockets.connect(f"{ws_url}?wallet={bystander.address}") as bystander_ws, \
            websockets.connect(ws_url) as everything:
        for ws in (buyer_ws, bystander_ws, everything):
            assert await _until_ready(ws) == []  # no `since`: from now on
        order = (await seller.act(api.http, "POST", "/orders", {"amount": 2 * KWH, "price": PRICE}))["details"]
        await buyer.act(api.http, "POST", f"/orders/{order['order']}/buy", {"amount": KWH})
        [created, filled, trade] = await _next(everything, 3)
        assert [e["kind"] for e in (created, filled, trade)] == ["order_created", "order_filled", "trade_executed"]
        assert [filled["id"], trade["id"]] == [created["id"] + 1, created["id"] + 2]
        assert created["subject"] == order["order"] and trade["data"]["remaining"] == KWH
        assert filled["signature"] == trade["signature"] and "wallets" not in trade
        mine = await _next(buyer_ws, 2)  # the buyer is named in the fill and the trade, not in the creation
        assert [e["id"] for e in mine] == [filled["id"], trade["id"]] and mine[1]["data"]["buyer"] == buyer.address
        with pytest.raises(TimeoutError):  # nothing concerned the bystander
            await asyncio.wait_for(bystander_ws.recv(), 0.5)
        last_seen = trade["id"]

    # while nobody listens: the rest is bought, then the seller's second order
    await buyer.act(api.http, "POST", f"/orders/{order['order']}/buy", {})
    second = (await seller.act(api.http, "POST", "/orders", {"amount": KWH, "price": PRICE}))["details"]
    async with websockets.connect(f"{ws_url}?since={last_seen}") as resumed:
        backlog = await _until_ready(resumed)
        assert [e["kind"] for e in backlog] == ["order_filled", "trade_executed", "order_created"]
        assert [e["id"] for e in backlog] == [last_seen + 1, last_seen + 2, last_seen + 3]
        assert backlog[2]["subject"] == second["order"]
        await seller.act(api.http, "POST", f"/orders/{second['order']}/cancel")
        [cancelled] = await _next(resumed, 1)
        assert cancelled["kind"] == "order_cancelled" and cancelled["id"] == last_seen + 4
    for _ in range(50):  # the server notices the last close within moments
        metrics = (await api.http.get("/metrics")).text
        if "gridtokenx_ws_clients 0.0" in metrics:
            break
        await asyncio.sleep(0.1)
    assert "gridtokenx_ws_clients 0.0" in metrics
    assert "gridtokenx_ws_events_sent_total" in metrics


async def test_a_rejected_reading_is_a_live_notice_for_its_meter(api: RunningApi) -> None:
    """Ingest quarantines a reading whose signature is not its gateway's; /ws clients following that meter
    (or everything) are told at once, a client following another meter or a wallet is not, and a client
    that reconnects gets no notice in its backlog (the quarantine table keeps the record)."""
    key = SigningKey(b"\x07" * 32)
    await api.storage.add_gateway("gw-ws", bytes(key.verify_key))
    ingest = Ingest(api.storage, on_rejected=RejectionNotices(api.feed))
    good = Reading(meter_id="m1", seq=1, timestamp_ms=1_760_000_000_000, import_wh=10, export_wh=20, power_w=5)
    forged = Reading(meter_id="m1", seq=2, timestamp_ms=1_760_000_001_000, import_wh=10, export_wh=30, power_w=5)
    other = SigningKey(b"\x08" * 32)
    payload = encode_batch("gw-ws", "b1", 1, [(good, sign(good, key)), (forged, sign(forged, other))])
    ws_url = api.url.replace("http://", "ws://") + "/ws"
    async with websockets.connect(f"{ws_url}?meter=m1") as m1_ws, \
            websockets.connect(f"{ws_url}?meter=m2") as m2_ws, \
            websockets.connect(f"{ws_url}?wallet={Keypair().pubkey()}") as wallet_ws, \
            websockets.connect(ws_url) as everything:
        for ws in (m1_ws, m2_ws, wallet_ws, everything):
            await _until_ready(ws)
        try:
            ack = await ingest.handle("gw-ws", payload)
        finally:
            ingest.close()
        assert ack is not None and [r.reason for r in ack.results] == [None, "bad_signature"]
        for ws in (m1_ws, everything):
            notice = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert notice == {"type": "notice", "kind": "reading_rejected", "gateway_id": "gw-ws", "meter_id": "m1",
                              "seq": 2, "reason": "bad_signature", "received_ms": notice["received_ms"]}
            assert notice["received_ms"] > 0
        for ws in (m2_ws, wallet_ws):
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(ws.recv(), 0.5)
    async with websockets.connect(f"{ws_url}?since=0&meter=m1") as again:
        assert all("id" in e for e in await _until_ready(again))  # a backlog holds events only, no notices
