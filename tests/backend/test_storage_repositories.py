"""Each data store's repository on both dialects: what it writes is what it reads, writes are idempotent."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from backend.storage import (
    Storage,
    balances,
    certificate_requests,
    certificates,
    events,
    meters,
    nonces,
    open_storage,
    orders,
    payments,
    trades,
    users,
)
from backend.storage import reading_states as rs
from backend.storage.sql import now_ms
from gridtokenx.reading import Flags
from tests.support.postgres import temp_database


@pytest.fixture(params=["postgres", "sqlite"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    if request.param == "postgres":
        request.applymarker(pytest.mark.postgres)
        with temp_database() as url:
            async with await open_storage(url) as s:
                yield s
    else:
        async with await open_storage(f"sqlite:///{tmp_path}/backend.db") as s:
            yield s


async def _readings(s: Storage, meter: str, seqs: range, *, flagged: tuple[int, ...] = ()) -> None:
    for seq in seqs:
        await s.execute(
            "INSERT INTO readings (gateway_id, meter_id, seq, timestamp_ms, import_wh, export_wh, power_w, flags, "
            "data, signature, received_ms) VALUES ('gw', $1, $2, $3, 0, $4, NULL, $5, $6, $7, 1)",
            meter, seq, 1_000 * seq, 10 * seq, int(Flags.METER_ERROR) if seq in flagged else 0,
            bytes([seq % 256]) * 60, b"s" * 64,
        )


async def test_users_profile_then_registration(storage: Storage) -> None:
    await users.save_profile(storage, "Wallet1", "prosumer", "Ann")
    await users.save_profile(storage, "Wallet1", "consumer", "Ann B")  # not on chain yet: type may change
    u = await users.get_user(storage, "Wallet1")
    assert u is not None and (u.user_type, u.name, u.registered) == ("consumer", "Ann B", False)
    await users.record_registration(storage, "Wallet1", "prosumer", "UserPda1", 1_700, "sig1")
    await users.record_registration(storage, "Wallet2", "consumer", "UserPda2", 1_701, "sig2")  # never seen by the API
    await users.save_profile(storage, "Wallet1", "consumer", "Ann C")  # the chain's kind stays
    u = await users.get_user(storage, "Wallet1")
    assert u is not None and (u.user_type, u.name, u.pda_address, u.registered_at) == ("prosumer", "Ann C",
                                                                                       "UserPda1", 1_700)
    assert await users.name_taken(storage, "ann c", "Wallet2")  # names compare without case
    assert not await users.name_taken(storage, "Ann C", "Wallet1")  # one's own name is not taken
    await users.touch(storage, "Wallet1", 5)
    assert [x.wallet_address for x in await users.list_users(storage)] == ["Wallet1", "Wallet2"]
    assert [x.wallet_address for x in await users.list_users(storage, after="Wallet1")] == ["Wallet2"]
    assert (await users.get_user(storage, "Wallet1")).last_active_ms == 5  # type: ignore[union-attr]


async def test_meters_follow_the_registry(storage: Storage) -> None:
    await meters.record_registered(storage, "m1", "MeterPda1", "Owner", b"k" * 32, registered_at=10, signature="s1",
                                   slot=1)
    await meters.record_status(storage, "m1", "ACTIVE", signature="s2", slot=2)
    await meters.record_settlement(storage, "m1", seq=5, mark_wh=900, minted=3, signature="s3", slot=3)
    await meters.record_settlement(storage, "m1", seq=6, mark_wh=950, minted=4, signature="s4", slot=4)
    m = await meters.get_meter(storage, "m1")
    assert m is not None
    assert (m.status, m.settled_seq, m.settled_mark_wh, m.minted_base_units, m.meter_key) == ("ACTIVE", 6, 950, 7,
                                                                                              b"k" * 32)
    await meters.record_owner(storage, "m1", "Owner2", b"n" * 32, signature="s5", slot=5)
    m = await meters.get_meter(storage, "m1")
    assert m is not None and (m.owner_wallet, m.status, m.meter_key) == ("Owner2", "PENDING", b"n" * 32)
    assert [x.meter_id for x in await meters.list_meters(storage, owner="Owner2")] == ["m1"]
    assert await meters.list_meters(storage, owner="Owner") == []
    with pytest.raises(ValueError):
        await meters.record_status(storage, "m1", "BROKEN", signature="s", slot=1)


async def test_reading_lifecycle_with_passed_over_readings_and_retries(storage: Storage) -> None:
    await _readings(storage, "m1", range(6), flagged=(5,))
    [work] = await rs.meters_with_new_readings(storage, "gw")
    assert (work.meter_id, work.settled_seq, work.latest_seq) == ("m1", None, 5)
    pair = await rs.candidate_readings(storage, "gw", "m1", None)
    assert pair is not None and (pair[0].seq, pair[1].seq) == (0, 4)  # seq 5 carries METER_ERROR
    assert await rs.mark_meter_errors(storage, "gw", "m1", 4) == 1

    assert await rs.claim_meter(storage, "gw", "m1", "minter-a", lease_ms=60_000)
    assert not await rs.claim_meter(storage, "gw", "m1", "minter-b", lease_ms=60_000)  # held by a
    await rs.mark_processing(storage, "gw", "m1", [0, 4], "minter-a")
    assert (await rs.state_counts(storage))["PROCESSING"] == 2

    # minter-b cannot record while minter-a holds the meter.
    async with storage.transaction() as tx:
        assert not await rs.record_minted(tx, "gw", "m1", [rs.Settled(4, "sig-b", 1)], "minter-b")
    async with storage.transaction() as tx:
        assert await rs.record_minted(tx, "gw", "m1", [rs.Settled(0, "sig-base", 0, baseline=True),
                                                       rs.Settled(4, "sig-4", 40_000_000)], "minter-a")
    assert [await rs.reading_state(storage, "gw", "m1", q) for q in range(6)] == [
        ("MINTED", "sig-base", None), ("MINTED", "sig-4", None), ("MINTED", "sig-4", None), ("MINTED", "sig-4", None),
        ("MINTED", "sig-4", None), ("FAILED", None, "meter_error")]
    assert await storage.fetch("SELECT seq, settled_by_seq, minted_base_units, baseline FROM reading_states "
                               "WHERE seq IN (0, 2, 4) ORDER BY seq") in (
        [(0, 0, 0, True), (2, 4, 0, False), (4, 4, 40_000_000, False)],
        [(0, 0, 0, 1), (2, 4, 0, 0), (4, 4, 40_000_000, 0)])
    assert await rs.meters_with_new_readings(storage, "gw") == [rs.MeterWork("gw", "m1", 4, 5)]

    # A refusal: FAILED with the reason, retried later, attempts counted; a chain outage does not count.
    await _readings(storage, "m1", range(6, 8))
    assert await rs.claim_meter(storage, "gw", "m1", "minter-b", lease_ms=60_000)  # released by minter-a
    await rs.record_failed(storage, "gw", "m1", [7], "CounterRollback", retry_at_ms=123)
    await rs.record_failed(storage, "gw", "m1", [7], "chain_unavailable", retry_at_ms=456, count_attempt=False)
    await rs.release_meter(storage, "gw", "m1", "minter-b")
    [failed] = [f for f in await rs.list_failed(storage, meter_id="m1") if f.seq == 7]
    assert (failed.reason, failed.attempts, failed.next_attempt_ms) == ("chain_unavailable", 1, 456)
    counts = await rs.state_counts(storage)
    assert (counts["STORED"], counts["MINTED"], counts["FAILED"], counts["FAILED retrying"]) == (1, 5, 2, 1)

    # Settled by someone else (no signature); the indexer fills it in from the settle event.
    assert await rs.claim_meter(storage, "gw", "m1", "minter-a", lease_ms=60_000)
    async with storage.transaction() as tx:
        assert await rs.record_minted(tx, "gw", "m1", [rs.Settled(7, None, note="already_settled:ReplayedReading")],
                                      "minter-a")
    assert await rs.reading_state(storage, "gw", "m1", 6) == ("MINTED", None, None)
    await rs.fill_signature(storage, "m1", 7, "sig-relayed")
    assert (await rs.reading_state(storage, "gw", "m1", 6))[:2] == ("MINTED", "sig-relayed")
    assert await rs.reading_state(storage, "gw", "m1", 7) == ("MINTED", "sig-relayed",
                                                              "already_settled:ReplayedReading")


async def test_an_expired_lease_can_be_taken_over(storage: Storage) -> None:
    await _readings(storage, "m1", range(2))
    assert await rs.claim_meter(storage, "gw", "m1", "crashed", lease_ms=60_000)
    assert not await rs.claim_meter(storage, "gw", "m1", "other", lease_ms=60_000)
    assert await rs.claim_meter(storage, "gw", "m1", "other", lease_ms=-1)  # lease over


async def test_events_apply_once_and_resume_by_id(storage: Storage) -> None:
    async with storage.transaction() as tx:
        assert await events.claim_transaction(tx, "sigA", slot=5, position=1, block_time=100, events=2)
        e1 = await events.insert_event(tx, signature="sigA", ix_index=0, event_index=0, slot=5, block_time=100,
                                       program="trading", kind="order_created", version=1, subject="OrderA",
                                       meter_id=None, payload={"amount": 2**63 + 5}, wallets=["Seller", "Seller"])
        e2 = await events.insert_event(tx, signature="sigA", ix_index=1, event_index=0, slot=5, block_time=100,
                                       program="energy_token", kind="minted", version=1, subject="MeterA",
                                       meter_id="m1", payload={"seq": 3}, wallets=["Owner"])
        await events.set_cursor(tx, "embedded", signature="sigA", slot=5, position=1)
    assert e1 is not None and e2 is not None and e2.id > e1.id
    async with storage.transaction() as tx:
        assert not await events.claim_transaction(tx, "sigA", slot=5, position=1, block_time=100, events=2)
        assert await events.insert_event(tx, signature="sigA", ix_index=0, event_index=0, slot=5, block_time=100,
                                         program="trading", kind="order_created", version=1, subject=None,
                                         meter_id=None, payload={}, wallets=[]) is None
        await events.set_cursor(tx, "embedded", signature="old", slot=1, position=0)  # never backwards
    assert [e.payload for e in await events.events_after(storage, 0)] == [{"amount": 2**63 + 5}, {"seq": 3}]
    assert [e.kind for e in await events.events_after(storage, e1.id)] == ["minted"]
    assert [e.kind for e in await events.events_after(storage, 0, wallet="Seller")] == ["order_created"]
    assert [e.kind for e in await events.events_after(storage, 0, meter_id="m1")] == ["minted"]
    assert [e.kind for e in await events.events_after(storage, 0, kinds=["minted", "x"])] == ["minted"]
    cursor = await events.get_cursor(storage, "embedded")
    assert cursor is not None and (cursor.signature, cursor.position) == ("sigA", 1)
    assert await events.transaction_applied(storage, "sigA") and not await events.transaction_applied(storage, "x")
    assert await events.event_counts(storage) == {"order_created": 1, "minted": 1}
    assert await events.last_event_id(storage) == e2.id


async def test_balances_are_set_from_the_newest_state_only(storage: Storage) -> None:
    common = {"owner": "W", "mint": "GridMint", "asset": "GRID", "escrow_order": None, "closed": False}
    await balances.set_token_balance(storage, address="Ata", amount=50, slot=10, position=2, signature="b", **common)
    await balances.set_token_balance(storage, address="Ata", amount=40, slot=10, position=1, signature="a", **common)
    await balances.set_token_balance(storage, address="Ata2", amount=7, slot=9, position=1, signature="c", **common)
    await balances.set_token_balance(storage, address="Vault", owner="OrderA", mint="GridMint", asset="GRID",
                                     amount=30, escrow_order="OrderA", closed=False, slot=11, position=1,
                                     signature="d")
    assert await balances.wallet_balances(storage, "W") == {"GRID": 57, "THBC": 0}
    assert [r.address for r in await balances.token_accounts(storage, escrow=True)] == ["Vault"]
    await balances.set_token_balance(storage, address="Vault", owner="OrderA", mint="GridMint", asset="GRID",
                                     amount=0, escrow_order=None, closed=True, slot=12, position=1, signature="e")
    [vault] = await balances.token_accounts(storage, owner="OrderA")
    assert (vault.amount, vault.closed, vault.escrow_order) == (0, True, "OrderA")


async def test_orders_trades_and_the_book(storage: Storage) -> None:
    for address, price, created in (("OrdB", 3_000_000, 20), ("OrdA", 3_000_000, 10), ("OrdC", 2_000_000, 30)):
        await orders.record_created(storage, address=address, order_id=1, seller="S", vault=f"V{address}",
                                    amount=1_000, price=price, fee_bps=25, created_at=created, expires_at=100,
                                    signature=f"c{address}", slot=1)
    await orders.record_created(storage, address="OrdA", order_id=1, seller="S", vault="x", amount=5, price=1,
                                fee_bps=25, created_at=10, expires_at=100, signature="cOrdA", slot=1)  # replayed
    assert [o.address for o in await orders.order_book(storage, now=50)] == ["OrdC", "OrdA", "OrdB"]
    assert [o.address for o in await orders.order_book(storage, after=(3_000_000, 10, "OrdA"))] == ["OrdB"]
    assert await orders.order_book(storage, now=100) == []  # all past their expiry
    assert [o.address for o in await orders.order_book(storage, min_price=2_500_000, max_price=3_000_000)] == [
        "OrdA", "OrdB"]
    assert await orders.order_book(storage, seller="Nobody") == []
    assert await orders.in_escrow(storage, "S") == 3_000
    assert [o.address for o in await orders.recent_orders(storage, "S")] == ["OrdC", "OrdB", "OrdA"]
    assert [o.address for o in await orders.recent_orders(storage, "S", before=(20, "OrdB"), limit=5)] == ["OrdA"]

    await orders.record_fill(storage, "OrdA", remaining=600, proceeds=1_396, signature="t1", slot=2)
    await orders.record_fill(storage, "OrdA", remaining=0, proceeds=2_094, signature="t2", slot=3, at=40)
    await orders.record_closed(storage, "OrdB", "EXPIRED", at=100, signature="x", slot=4)
    a = await orders.get_order(storage, "OrdA")
    assert a is not None and (a.state, a.remaining, a.filled, a.proceeds, a.closed_at) == ("FILLED", 0, 1_000,
                                                                                         3_490, 40)
    assert [o.address for o in await orders.expired_open_orders(storage, 100)] == ["OrdC"]
    assert [o.address for o in await orders.list_orders(storage, states=["EXPIRED", "FILLED"])] == ["OrdA", "OrdB"]
    assert [o.address for o in await orders.recent_orders(storage, "S", states=["EXPIRED", "FILLED"])] == [
        "OrdB", "OrdA"]
    assert await orders.in_escrow(storage, "S") == 1_000  # OrdC is the one open
    with pytest.raises(ValueError):
        await orders.record_closed(storage, "OrdC", "FILLED", at=1, signature="y", slot=5)
    # The seller reuses the order id after closing the account: a new order at the same address.
    await orders.record_created(storage, address="OrdA", order_id=1, seller="S", vault="VOrdA", amount=77,
                                price=5, fee_bps=25, created_at=200, expires_at=300, signature="again", slot=9)
    a = await orders.get_order(storage, "OrdA")
    assert a is not None and (a.state, a.amount, a.remaining, a.proceeds) == ("ACTIVE", 77, 77, 0)

    row = trades.TradeRow("t1", 0, 0, "OrdA", "S", "B", 400, 3_500_000, 1_400, 4, 600, 30, 2, 11)
    assert await trades.insert_trade(storage, row) and not await trades.insert_trade(storage, row)
    await trades.insert_trade(storage, trades.TradeRow("t2", 0, 0, "OrdA", "S", "B", 600, 3_500_000, 2_100, 6, 0,
                                                       40, 3, 12))
    assert [t.signature for t in await trades.list_trades(storage, wallet="B")] == ["t1", "t2"]
    assert [t.signature for t in await trades.list_trades(storage, since=35)] == ["t2"]
    assert [t.signature for t in await trades.list_trades(storage, after=11)] == ["t2"]
    assert [t.signature for t in await trades.list_trades(storage, newest_first=True)] == ["t2", "t1"]
    assert [t.signature for t in await trades.list_trades(storage, newest_first=True, after=12)] == ["t1"]
    totals = await trades.trade_totals(storage)
    assert totals["S"]["sold"] == 1_000 and totals["S"]["received"] == 3_490 and totals["B"]["paid"] == 3_500


async def test_certificates_and_payments(storage: Storage) -> None:
    row = certificates.CertificateRow("Cert1", "MeterPda", "m1", 0, "Holder", 0, 4_000, "PENDING", None, 100,
                                      1_000, None, None, "i1", "i1", 5, 0)
    await certificates.record_certificate(storage, row)
    await certificates.record_status(storage, "Cert1", "VALID", signature="v1", slot=6, validated_at=110)
    await certificates.record_status(storage, "Cert1", "RETIRED", signature="r1", slot=7, closed_at=120)
    c = await certificates.get_certificate(storage, "Cert1")
    assert c is not None and (c.status, c.validated_at, c.closed_at, c.wh) == ("RETIRED", 110, 120, 4_000)
    await certificates.record_certificate(storage, row)  # an old state replayed does not go back
    assert (await certificates.get_certificate(storage, "Cert1")).status == "RETIRED"  # type: ignore[union-attr]
    assert await certificates.certificate_totals(storage) == {"m1": {"issued": 1, "issued_wh": 4_000, "retired": 1,
                                                                     "retired_wh": 4_000}}
    assert await certificates.expired_open_certificates(storage, 5_000) == []
    assert [x.address for x in await certificates.list_certificates(storage, holder="Holder")] == ["Cert1"]
    await certificates.record_certificate(storage, certificates.CertificateRow(
        "Cert2", "MeterPda", "m1", 1, "Other", 4_000, 5_000, "PENDING", None, 150, 1_000, None, None, "i2", "i2", 8, 0))
    assert [x.address for x in await certificates.recent_certificates(storage)] == ["Cert2", "Cert1"]
    assert [x.address for x in await certificates.recent_certificates(storage, before=(150, "Cert2"))] == ["Cert1"]
    assert [x.address for x in await certificates.recent_certificates(storage, status="PENDING")] == ["Cert2"]

    p = payments.PaymentRow("p1", 0, 0, "ISSUE", "W", "THBC", 1_000_000, "DEP-1", 50, 9, 1)
    assert await payments.insert_payment(storage, p) and not await payments.insert_payment(storage, p)
    await payments.insert_payment(storage, payments.PaymentRow("p2", 0, 0, "REDEEM", "W", "THBC", 400_000, "PAY-1",
                                                               60, 10, 2))
    assert [x.signature for x in await payments.list_payments(storage, wallet="W")] == ["p1", "p2"]
    assert [x.signature for x in await payments.list_payments(storage, reference="DEP-1")] == ["p1"]
    assert [x.signature for x in await payments.list_payments(storage, newest_first=True)] == ["p2", "p1"]
    assert [x.signature for x in await payments.list_payments(storage, newest_first=True, after=2)] == ["p1"]
    assert await payments.payment_totals(storage) == {"ISSUE": 1_000_000, "REDEEM": 400_000, "CONSUME": 0}
    assert await payments.payment_totals(storage, since=55) == {"ISSUE": 0, "REDEEM": 400_000, "CONSUME": 0}


async def test_sign_in_nonces_are_used_once_and_expire(storage: Storage) -> None:
    await nonces.issue_nonce(storage, "n1", 60)
    await nonces.issue_nonce(storage, "n2", 0)  # expires at once
    assert await nonces.consume_nonce(storage, "n1") and not await nonces.consume_nonce(storage, "n1")
    await storage.execute("UPDATE api_nonces SET expires_ms = 1 WHERE nonce = 'n2'")
    assert not await nonces.consume_nonce(storage, "n2") and not await nonces.consume_nonce(storage, "unknown")
    await nonces.issue_nonce(storage, "n3", 60)  # issuing drops the expired
    assert [r[0] for r in await storage.fetch("SELECT nonce FROM api_nonces ORDER BY nonce")] == ["n3"]


async def test_a_certificate_index_is_held_by_one_request_at_a_time(storage: Storage) -> None:
    later = now_ms() + 60_000
    # Two requests for one meter at once: one holds index 0, the other is told which request does.
    got = await asyncio.gather(*(certificate_requests.reserve(storage, "m1", 0, wh, f"d{wh}", later, next_index=0)
                                 for wh in (100, 200)))
    assert sorted(g is None for g in got) == [False, True]
    holder = next(g for g in got if g is not None)
    assert holder.cert_index == 0 and holder.digest in {"d100", "d200"} and holder.meter_id == "m1"
    winner = holder.digest
    assert await certificate_requests.reserve(storage, "m2", 0, 5, "other-meter", later, next_index=0) is None
    # Still held while in flight; free once the chain's mark moved past it (it landed) ...
    assert await certificate_requests.hold(storage, winner, later + 60_000)
    assert (await certificate_requests.reserve(storage, "m1", 0, 300, "d300", later, next_index=0)) is not None
    assert await certificate_requests.reserve(storage, "m1", 1, 300, "d300", later, next_index=1) is None
    # ... or when released (refused on chain after running) ...
    await certificate_requests.release(storage, "d300")
    assert await certificate_requests.pending(storage, "m1") is None
    # ... or once it lapsed.
    assert await certificate_requests.reserve(storage, "m1", 1, 400, "d400", now_ms() - 1, next_index=1) is None
    assert await certificate_requests.reserve(storage, "m1", 1, 500, "d500", later, next_index=1) is None
    held = await certificate_requests.pending(storage, "m1")
    assert held is not None and (held.cert_index, held.to_wh, held.digest) == (1, 500, "d500")
