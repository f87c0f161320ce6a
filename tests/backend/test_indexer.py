"""The indexer over real transactions — the embedded chain's journal and JSON-RPC (the localnet) — into
PostgreSQL and SQLite: every event once, D1 and D3-D6 equal to the chain, resumable without gap or duplicate."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from backend.chain.embedded import EmbeddedChain, open_embedded_chain
from backend.chain.localnet import LocalnetServer
from backend.consistency import check_consistency
from backend.feed import InProcessFeed
from backend.indexer import Decoder, EmbeddedSource, Indexer, RpcSource
from backend.storage import (
    Storage,
    balances,
    certificates,
    events,
    meters,
    open_storage,
    orders,
    payments,
    trades,
    users,
)
from programs.client import RpcChain
from programs.client.chain import Chain, ChainError
from tests.support.chainworld import GATEWAY_ID, GATEWAY_KEY
from tests.support.link import Link
from tests.support.postgres import temp_database
from tests.support.scenario import KWH, Scenario, run_scenario

pytestmark = pytest.mark.chain


@pytest.fixture(params=["postgres", "sqlite"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    if request.param == "postgres":
        request.applymarker(pytest.mark.postgres)
        with temp_database() as url:
            async with await open_storage(url) as s:
                await s.add_gateway(GATEWAY_ID, bytes(GATEWAY_KEY.verify_key))
                yield s
    else:
        async with await open_storage(f"sqlite:///{tmp_path}/backend.db") as s:
            await s.add_gateway(GATEWAY_ID, bytes(GATEWAY_KEY.verify_key))
            yield s


async def check_scenario(storage: Storage, chain: Chain, embedded: EmbeddedChain, s: Scenario) -> None:
    assert await events.event_counts(storage) == s.expected_kinds
    bought = await orders.get_order(storage, s.orders["bought"])
    assert bought is not None
    assert (bought.state, bought.amount, bought.remaining, bought.escrow, bought.expires_at is not None,
            bought.fee_bps) == ("PARTIALLY_FILLED", 4 * KWH, 4 * KWH - KWH - KWH // 2, 4 * KWH - KWH - KWH // 2,
                                True, embedded.deployment.fee_bps)
    assert [(await orders.get_order(storage, s.orders[n])).state for n in ("cancelled", "expired")] == [  # type: ignore[union-attr]
        "CANCELLED", "EXPIRED"]
    assert [(t.amount, t.buyer) for t in await trades.list_trades(storage, order_address=s.orders["bought"])] == [
        (KWH, str(s.buyer.address)), (KWH // 2, str(s.buyer.address))]
    # Bought 1.5 kWh and burned 0.5 consumed; 100 THBC issued, 5.25 paid, 2 redeemed.
    assert await balances.wallet_balances(storage, str(s.buyer.address)) == {
        "GRID": KWH, "THBC": 100 * 10**6 - 3_500_000 - 1_750_000 - 2 * 10**6}
    buyer = str(s.buyer.address)
    assert [(p.kind, p.wallet, p.asset, p.amount) for p in await payments.list_payments(storage, wallet=buyer)] == [
        ("ISSUE", buyer, "THBC", 100 * 10**6), ("REDEEM", buyer, "THBC", 2 * 10**6),
        ("CONSUME", buyer, "GRID", KWH // 2)]
    assert (await payments.list_payments(storage, kind="REDEEM"))[0].reference == "PAYOUT-1"
    # 8 kWh minted, 4 in escrow; the cancelled and the expired order gave theirs back.
    assert (await balances.wallet_balances(storage, str(s.seller.address)))["GRID"] == 8 * KWH - 4 * KWH
    cert = await certificates.get_certificate(storage, str(s.certificate))
    assert cert is not None and (cert.status, cert.holder, cert.to_wh, cert.meter_id) == (
        "RETIRED", str(s.buyer.address), 3_000, "pv-idx")
    seller_user = await users.get_user(storage, str(s.seller.address))
    assert seller_user is not None and seller_user.user_type == "prosumer" and seller_user.registered
    m = await meters.get_meter(storage, "pv-idx")
    assert m is not None and (m.status, m.minted_base_units) == ("ACTIVE", 8 * KWH)
    report = await check_consistency(storage, chain, embedded.deployment)
    assert report.ok, [str(x) for x in report.discrepancies]
    assert report.checked["token_accounts"] >= 5 and report.checked["orders"] == 3


def _indexer(storage: Storage, embedded: EmbeddedChain, feed: InProcessFeed, *, rpc: RpcChain | None = None,
             page_size: int = 500) -> Indexer:
    d = embedded.deployment
    chain: Chain = rpc if rpc is not None else embedded.chain

    async def read(address: Any) -> bytes | None:
        account = await chain.get_account(address)
        return None if account is None else bytes(account.data)

    source = (RpcSource(rpc.client, list(d.programs.values()), page_size=page_size) if rpc is not None
              else EmbeddedSource(embedded.chain, list(d.programs.values()), page_size=page_size))
    return Indexer(storage, source, Decoder(d, read), d, feed)


@contextlib.asynccontextmanager
async def collecting(feed: InProcessFeed) -> AsyncIterator[list[dict[str, Any]]]:
    got: list[dict[str, Any]] = []
    async with feed.subscribe() as sub:

        async def pump() -> None:
            async for event in sub:
                got.append(event)

        task = asyncio.create_task(pump())
        try:
            yield got
        finally:
            await asyncio.sleep(0)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def test_embedded_journal_indexed_once_and_equal_to_the_chain(storage: Storage, tmp_path: Path) -> None:
    embedded = await open_embedded_chain(tmp_path / "chain")
    try:
        scenario = await run_scenario(embedded.chain, embedded, storage)
        feed = InProcessFeed()
        async with collecting(feed) as got:
            indexer = _indexer(storage, embedded, feed, page_size=7)  # several batches
            await indexer.catch_up()
            await asyncio.sleep(0.05)
        await check_scenario(storage, embedded.chain, embedded, scenario)
        stored = await events.events_after(storage, 0, limit=1000)
        assert [e["id"] for e in got] == [e.id for e in stored]  # each event published once, in order
        # Again: nothing new is applied or published.
        again = InProcessFeed()
        async with collecting(again) as more:
            await _indexer(storage, embedded, again).catch_up()
        assert more == [] and await events.last_event_id(storage) == stored[-1].id
    finally:
        embedded.chain.close()


async def test_payment_references_are_kept_as_the_api_takes_them(storage: Storage, tmp_path: Path) -> None:
    """A bank reference stays its text; a 32-byte binary reference (a hash) is ``0x`` + hex — in D7 and in
    the event (programs.payments.client.reference_text), so the api's "each reference once" finds it."""
    from programs.payments import client as payments_program
    from tests.support import market

    embedded = await open_embedded_chain(tmp_path / "chain")
    try:
        d = embedded.deployment
        wallet = await market.new_wallet(embedded.chain, d)
        binary = bytes(range(32))
        for reference in ("KBANK-2025-000123", binary):
            await market.issue_thbc(embedded.chain, d, embedded.payment_gateway, wallet, 10**6,
                                    reference)
        await _indexer(storage, embedded, InProcessFeed()).catch_up()
        texts = ["KBANK-2025-000123", "0x" + binary.hex()]
        assert [p.reference for p in await payments.list_payments(storage, kind="ISSUE")] == texts
        assert [e.payload["reference"] for e in await events.events_after(storage, 0, kinds=["thbc_issued"])] == texts
        assert payments_program.reference_text(payments_program.reference_bytes(binary)) == texts[1]
    finally:
        embedded.chain.close()


async def test_resumes_after_a_crash_mid_stream_without_gap_or_duplicate(storage: Storage, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    embedded = await open_embedded_chain(tmp_path / "chain")
    try:
        scenario = await run_scenario(embedded.chain, embedded, storage)
        import backend.indexer.indexer as module

        real = module.apply_transaction
        calls = 0

        async def dying(*args: Any, **kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            if calls == 9:  # the process dies inside the ninth transaction's database transaction
                raise KeyboardInterrupt
            return await real(*args, **kwargs)

        monkeypatch.setattr(module, "apply_transaction", dying)
        feed = InProcessFeed()
        async with collecting(feed) as first:
            with pytest.raises(KeyboardInterrupt):
                await _indexer(storage, embedded, feed, page_size=4).catch_up()
        partial = await events.events_after(storage, 0, limit=1000)
        assert 0 < len(partial) < sum(scenario.expected_kinds.values())
        monkeypatch.setattr(module, "apply_transaction", real)
        async with collecting(feed) as second:
            await _indexer(storage, embedded, feed).catch_up()
            await asyncio.sleep(0.05)
        ids = [e["id"] for e in first + second]
        assert ids == sorted(set(ids)) and len(ids) == sum(scenario.expected_kinds.values())
        await check_scenario(storage, embedded.chain, embedded, scenario)
    finally:
        embedded.chain.close()


async def test_over_json_rpc_with_an_outage(storage: Storage, tmp_path: Path) -> None:
    embedded = await open_embedded_chain(tmp_path / "chain", blockhash_check=False, slot_per_transaction=False)
    try:
        async with LocalnetServer(embedded.chain, slot_interval=0.02) as server, \
                RpcChain(server.url, poll_interval=0.02, timeout=10) as rpc:
            scenario = await run_scenario(rpc, embedded, storage)
            async with Link(int(server.url.rsplit(":", 1)[1])) as link, \
                    RpcChain(link.url, poll_interval=0.02, timeout=5) as through_link:
                link.up = True
                feed = InProcessFeed()
                async with collecting(feed) as got:
                    indexer = _indexer(storage, embedded, feed, rpc=through_link, page_size=5)
                    assert await indexer.run_once() == 5
                    await link.cut()  # the node goes away mid-stream
                    with pytest.raises(ChainError):
                        await indexer.run_once()
                    link.up = True
                    await indexer.catch_up()
                    await asyncio.sleep(0.05)
            await check_scenario(storage, rpc, embedded, scenario)
            ids = [e["id"] for e in got]
            assert ids == sorted(set(ids)) and len(ids) == sum(scenario.expected_kinds.values())
    finally:
        embedded.chain.close()


@pytest.mark.postgres
async def test_two_indexers_on_one_database_apply_each_event_once(tmp_path: Path) -> None:
    embedded = await open_embedded_chain(tmp_path / "chain")
    try:
        with temp_database() as url:
            async with await open_storage(url) as a, await open_storage(url) as b:
                await a.add_gateway(GATEWAY_ID, bytes(GATEWAY_KEY.verify_key))
                scenario = await run_scenario(embedded.chain, embedded, a)
                feed = InProcessFeed()
                async with collecting(feed) as got:
                    one, two = _indexer(a, embedded, feed, page_size=3), _indexer(b, embedded, feed, page_size=3)
                    await asyncio.gather(one.catch_up(), two.catch_up())
                    await asyncio.sleep(0.05)
                # Together they applied each transaction once (what one had applied, the other found claimed
                # or had already passed by the shared cursor).
                applied = one.stats.transactions + two.stats.transactions
                assert applied == (await a.fetch("SELECT count(*) FROM chain_transactions"))[0][0]
                ids = [e["id"] for e in got]
                assert ids == sorted(set(ids)) and len(ids) == sum(scenario.expected_kinds.values())
                await check_scenario(a, embedded.chain, embedded, scenario)
    finally:
        embedded.chain.close()
