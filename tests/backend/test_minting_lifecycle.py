"""The reading lifecycle through the minting worker: several meters per transaction, the retry queue,
readings covered by a newer settlement, two workers on one database, and a restarted embedded chain."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from solders.keypair import Keypair

from backend.chain.embedded import open_embedded_chain
from backend.chain.persistent import PersistentLiteSVMChain
from backend.minting import MintingWorker, MintPolicy
from backend.storage import Storage, open_storage
from backend.storage import reading_states as rs
from gridtokenx.reading import Reading
from programs.energy_token import client as energy
from programs.energy_token.bootstrap import register_active_meter
from tests.support.chainworld import GATEWAY_ID, GATEWAY_KEY, World, ingest, make_world, reading, token_balance
from tests.support.postgres import temp_database

pytestmark = pytest.mark.chain

WH = energy.BASE_UNITS_PER_WH
NO_WAIT = MintPolicy(retry_first_s=0.0)


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


@pytest.fixture
async def world() -> World:
    return await make_world()


def _worker(storage: Storage, world: World, policy: MintPolicy = NO_WAIT, instance: str = "minter") -> MintingWorker:
    return MintingWorker(storage, world.chain, world.deployment.grid, relayer=world.relayer, policy=policy,
                         instance=instance)


def _series(meter: str, seqs: range, step_wh: int = 100) -> list[Reading]:
    return [reading(meter, s, 1_000, 2_000 + step_wh * s) for s in seqs]


async def test_several_meters_settle_in_one_transaction(storage: Storage, world: World) -> None:
    meters = [await world.meter(f"pv-{i}") for i in range(6)]
    for m in meters:
        await ingest(storage, *_series(m.meter_id, range(3)))
    worker = _worker(storage, world)
    first = await worker.run_once()  # fresh meters: baseline + latest each, one meter per transaction
    assert first.minted == {m.meter_id: 200 * WH for m in meters}
    assert first.transactions == 6
    for m in meters:
        await ingest(storage, *_series(m.meter_id, range(3, 5)))
    second = await worker.run_once()  # one reading per meter now: several share a transaction
    assert second.minted == {m.meter_id: 200 * WH for m in meters}
    assert second.transactions < 6, second.transactions
    per_transaction = [sum(1 for s in second.settled.values() if s.signature == sig)
                       for sig in {s.signature for s in second.settled.values()}]
    assert max(per_transaction) >= 2 and sum(per_transaction) == 6
    for m in meters:
        assert await world.grid(m) == 400 * WH
    counts = await rs.state_counts(storage)
    assert (counts["MINTED"], counts["STORED"], counts["PROCESSING"], counts["FAILED"]) == (30, 0, 0, 0)


async def test_one_refused_meter_does_not_hold_back_the_others(storage: Storage, world: World) -> None:
    good, bad = await world.meter("good"), await world.meter("rolled-back")
    await ingest(storage, *_series("good", range(2)), *_series("rolled-back", range(2)))
    worker = _worker(storage, world)
    await worker.run_once()
    # The second meter's counter went backwards (a swapped meter): the chain refuses it by name.
    await ingest(storage, reading("good", 2, 1_000, 2_500), reading("rolled-back", 2, 1_000, 5))
    summary = await worker.run_once()
    assert summary.minted == {"good": 400 * WH} and summary.refused == {"rolled-back": "CounterRollback"}
    assert await rs.reading_state(storage, GATEWAY_ID, "rolled-back", 2) == ("FAILED", None, "CounterRollback")
    assert await world.grid(good) == 500 * WH and await world.grid(bad) == 100 * WH


async def test_refusals_back_off_then_give_up_until_a_newer_reading_covers_them(storage: Storage,
                                                                                world: World) -> None:
    meter = await world.meter("swapped")
    await ingest(storage, *_series("swapped", range(2)))
    policy = MintPolicy(retry_first_s=0.0, max_attempts=2)
    worker = _worker(storage, world, policy)
    await worker.run_once()
    await ingest(storage, reading("swapped", 2, 1_000, 5))  # rolled back
    assert (await worker.run_once()).refused == {"swapped": "CounterRollback"}
    [failed] = [f for f in await rs.list_failed(storage) if f.seq == 2]
    assert (failed.attempts, failed.next_attempt_ms is not None) == (1, True)
    assert (await worker.run_once()).refused == {"swapped": "CounterRollback"}  # second and last attempt
    [failed] = [f for f in await rs.list_failed(storage) if f.seq == 2]
    assert (failed.attempts, failed.next_attempt_ms) == (2, None)  # given up
    assert (await worker.run_once()).refused == {}  # not sent again
    assert (await rs.state_counts(storage))["FAILED given up"] == 1

    # With backoff, a refused reading waits: not sent again before its time.
    waiting = _worker(storage, world, MintPolicy(retry_first_s=3600.0))
    await ingest(storage, reading("swapped", 3, 1_000, 6))
    assert (await waiting.run_once()).refused == {"swapped": "CounterRollback"}
    assert (await waiting.run_once()).refused == {}

    # Counters past the mark again: the newest reading settles; every older one is MINTED by it.
    await ingest(storage, reading("swapped", 4, 1_000, 2_400))
    summary = await worker.run_once()
    assert summary.minted == {"swapped": 300 * WH}
    sig = summary.settled["swapped"].signature
    for seq in (2, 3, 4):
        assert (await rs.reading_state(storage, GATEWAY_ID, "swapped", seq))[:2] == ("MINTED", sig)
    assert await world.grid(meter) == 400 * WH


async def test_passed_over_and_meter_error_readings_get_their_states(storage: Storage, world: World) -> None:
    await world.meter("flaky")
    await ingest(storage, *_series("flaky", range(4)), reading("flaky", 4, 1_000, 9_999, meter_error=True))
    summary = await _worker(storage, world).run_once()
    assert summary.minted == {"flaky": 300 * WH}
    sig = summary.settled["flaky"].signature
    base = summary.baselines["flaky"].signature
    assert [await rs.reading_state(storage, GATEWAY_ID, "flaky", s) for s in range(5)] == [
        ("MINTED", base, None), ("MINTED", sig, None), ("MINTED", sig, None), ("MINTED", sig, None),
        ("FAILED", None, "meter_error")]


async def test_a_reading_delivered_after_a_newer_one_settled_is_covered(storage: Storage, world: World) -> None:
    await world.meter("late")
    await ingest(storage, *_series("late", range(2, 5)))
    worker = _worker(storage, world)
    summary = await worker.run_once()
    base, latest = summary.baselines["late"].signature, summary.settled["late"].signature
    # Readings 0 and 1 arrive now (a batch resent after an ack timeout): below the settled baseline.
    await ingest(storage, *_series("late", range(0, 2)))
    assert await worker.sweep_late_readings() == 2
    assert [await rs.reading_state(storage, GATEWAY_ID, "late", s) for s in range(5)] == [
        ("MINTED", base, None), ("MINTED", base, None), ("MINTED", base, None), ("MINTED", latest, None),
        ("MINTED", latest, None)]
    assert (await rs.state_counts(storage))["STORED"] == 0
    assert await worker.sweep_late_readings() == 0


@pytest.mark.postgres
async def test_two_workers_on_one_database_never_send_a_meter_twice(world: World) -> None:
    with temp_database() as url:
        async with await open_storage(url) as a, await open_storage(url) as b:
            await a.add_gateway(GATEWAY_ID, bytes(GATEWAY_KEY.verify_key))
            meters = [await world.meter(f"m{i}") for i in range(8)]
            for m in meters:
                await ingest(a, *_series(m.meter_id, range(3)))
            one, two = _worker(a, world, instance="minter-1"), _worker(b, world, instance="minter-2")
            for _ in range(3):
                await asyncio.gather(one.run_once(), two.run_once())
            # Each reading was settled by exactly one worker; neither saw the other's reading refused.
            assert one.stats.already_settled == two.stats.already_settled == 0
            assert one.stats.meters_settled + two.stats.meters_settled == 8
            assert one.stats.settled + two.stats.settled == 16  # baseline + latest per meter
            rows = await a.fetch("SELECT meter_id, count(*) FROM reading_states WHERE state = 'MINTED' "
                                 "GROUP BY meter_id ORDER BY meter_id")
            assert rows == [(f"m{i}", 3) for i in range(8)]
            for m in meters:
                assert await world.grid(m) == 200 * WH


async def test_a_relayer_without_sol_waits_on_an_embedded_chain(storage: Storage, tmp_path: Path) -> None:
    """The relayer's settlements are refused before they run (no SOL for the fee): nothing is journaled,
    the readings wait without using up attempts — pass after pass (the second refusal used to stop the
    worker with the journal's UNIQUE signature) — and mint once the relayer is funded."""
    chain = PersistentLiteSVMChain(tmp_path / "chain")
    try:
        world = await make_world(chain)
        meters = [await world.meter(f"dry-{i}") for i in range(2)]
        for m in meters:
            await ingest(storage, *_series(m.meter_id, range(2)))
        broke = Keypair()
        worker = MintingWorker(storage, chain, world.deployment.grid, relayer=broke, policy=NO_WAIT)
        position = chain.journal_position
        for _ in range(2):
            summary = await worker.run_once()
            assert summary.refused == {m.meter_id: "transaction:AccountNotFound" for m in meters}
        assert chain.journal_position == position
        failed = await rs.list_failed(storage)
        assert {(f.reason, f.attempts) for f in failed} == {("transaction:AccountNotFound", 0)}
        await chain.fund(broke.pubkey(), 10**9)
        assert (await worker.run_once()).minted == {m.meter_id: 100 * WH for m in meters}
    finally:
        chain.close()


async def test_an_embedded_chain_keeps_balances_across_a_restart(storage: Storage, tmp_path: Path) -> None:
    directory = tmp_path / "chain"
    embedded = await open_embedded_chain(directory)
    assert embedded.created
    owner = Keypair()
    await embedded.chain.fund(owner.pubkey(), 10**9)
    meter = await register_active_meter(embedded.chain, embedded.deployment.grid, embedded.admin, owner, "pv",
                                        bytes(GATEWAY_KEY.verify_key))
    await ingest(storage, *_series("pv", range(3)))
    worker = MintingWorker(storage, embedded.chain, embedded.deployment.grid, relayer=embedded.relayer,
                           policy=NO_WAIT)
    assert (await worker.run_once()).minted == {"pv": 200 * WH}
    embedded.chain.close()

    again = await open_embedded_chain(directory)
    assert not again.created and again.deployment == embedded.deployment
    assert await token_balance(again.chain, meter.grid_account) == 200 * WH
    supply = struct.unpack_from("<Q", bytes((await again.chain.get_account(again.deployment.grid_mint)).data), 36)[0]
    assert supply == 200 * WH
    # The programs run as before: the next reading mints only what is new.
    await ingest(storage, *_series("pv", range(3, 5)))
    worker = MintingWorker(storage, again.chain, again.deployment.grid, relayer=again.relayer, policy=NO_WAIT)
    assert (await worker.run_once()).minted == {"pv": 200 * WH}
    assert await token_balance(again.chain, meter.grid_account) == 400 * WH
    assert again.chain.journal_length > 0 and again.chain.journal_after(0)[0].position == 1
    again.chain.close()
