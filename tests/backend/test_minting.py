"""The minting worker over real ingest storage (PostgreSQL and SQLite) and real LiteSVM transactions.

Readings are signed with the gateway's key and stored through backend.ingest.pipeline.Ingest, exactly as the
backend receives them; the worker settles them with [Ed25519 check, SettleAndMint] and the chain decides.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from nacl.signing import SigningKey
from solders.keypair import Keypair

from backend.chain.embedded import EmbeddedDeployment, embedded_deployment
from backend.ingest.pipeline import Ingest
from backend.minting import ChainRetry, ChainUnavailable, MintingWorker, MintPolicy, Outcome
from backend.storage import Storage, open_storage
from gridtokenx.batch import AckStatus, encode_batch
from gridtokenx.reading import Reading, sign
from programs.client import LiteSVMChain, RpcChain
from programs.client.litesvm_rpc import LiteSVMRpcServer
from programs.energy_token import client as energy
from programs.energy_token.bootstrap import RegisteredMeter, register_active_meter
from programs.registry import client as registry
from tests.support.link import Link
from tests.support.postgres import temp_database

pytestmark = pytest.mark.chain

GW = "gw-mint"
T0 = 1_764_072_000_000
WH = energy.BASE_UNITS_PER_WH
GATEWAY_KEY = SigningKey(b"\x11" * 32)


@pytest.fixture(params=["postgres", "sqlite"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    if request.param == "postgres":
        request.applymarker(pytest.mark.postgres)
        with temp_database() as url:
            async with await open_storage(url) as s:
                await s.add_gateway(GW, bytes(GATEWAY_KEY.verify_key))
                yield s
    else:
        async with await open_storage(f"sqlite:///{tmp_path}/backend.db") as s:
            await s.add_gateway(GW, bytes(GATEWAY_KEY.verify_key))
            yield s


def _reading(meter: str, seq: int, import_wh: int, export_wh: int, *, meter_error: bool = False) -> Reading:
    return Reading(meter, seq, T0 + seq * 1_000, import_wh, export_wh, power_w=-250, meter_error=meter_error)


_batches = iter(range(1, 10**6))


async def _ingest(storage: Storage, *readings: Reading) -> None:
    """Through the backend's real ingest path: verified, stored, acknowledged."""
    ingest = Ingest(storage)
    try:
        payload = encode_batch(GW, f"b{next(_batches)}", 1, [(r, sign(r, GATEWAY_KEY)) for r in readings])
        ack = await ingest.handle(GW, payload)
    finally:
        ingest.close()
    assert ack is not None and {r.status for r in ack.results} == {AckStatus.STORED}


@dataclass
class World:
    chain: LiteSVMChain
    admin: Keypair
    deployment: EmbeddedDeployment
    relayer: Keypair

    async def meter(self, meter_id: str, key: bytes = bytes(GATEWAY_KEY.verify_key)) -> RegisteredMeter:
        owner = Keypair()
        await self.chain.fund(owner.pubkey(), 10**9)
        return await register_active_meter(self.chain, self.deployment.grid, self.admin, owner, meter_id, key)

    async def grid(self, meter: RegisteredMeter) -> int:
        found = await self.chain.get_account(meter.grid_account)
        assert found is not None
        amount: int = struct.unpack_from("<Q", bytes(found.data), 64)[0]
        return amount

    async def on_chain(self, meter: RegisteredMeter) -> registry.Meter:
        found = await registry.fetch_meter(self.chain, self.deployment.grid.registry_program, meter.meter_id)
        assert found is not None
        return found


async def _world(chain: LiteSVMChain | None = None) -> World:
    chain = chain or LiteSVMChain()
    admin, relayer = Keypair(), Keypair()
    deployment = await embedded_deployment(chain, admin)
    await chain.fund(relayer.pubkey(), 10**9)
    return World(chain, admin, deployment, relayer)


@pytest.fixture
async def world() -> World:
    return await _world()


# Failed readings are due again at once, so each run_once retries them.
NO_WAIT = MintPolicy(retry_first_s=0.0)


def _worker(storage: Storage, world: World, **kw: object) -> MintingWorker:
    kw.setdefault("policy", NO_WAIT)
    return MintingWorker(storage, world.chain, world.deployment.grid, relayer=world.relayer, **kw)  # type: ignore[arg-type]


async def _settlements(storage: Storage) -> list[tuple[object, ...]]:
    """The readings the chain accepted or already held, as (meter, seq, outcome, refusal, has signature,
    minted): reading states MINTED by their own settlement (not the ones a later settlement covered)."""
    rows = await storage.fetch(
        "SELECT meter_id, seq, reason, tx_signature IS NOT NULL, minted_base_units FROM reading_states "
        "WHERE state = 'MINTED' AND settled_by_seq = seq ORDER BY meter_id, seq"
    )
    out: list[tuple[object, ...]] = []
    for meter, seq, reason, signed, minted in rows:
        already = reason is not None and reason.startswith("already_settled:")
        out.append((meter, seq, "already_settled" if already else "minted",
                    reason.split(":", 1)[1] if already else None, bool(signed), minted))
    return out


async def test_mints_net_surplus_then_only_the_new_surplus(storage: Storage, world: World) -> None:
    pv = await world.meter("pv-roof")
    house = await world.meter("house")
    await _ingest(storage, *(_reading("pv-roof", s, 1_000 + 10 * s, 4_000 + 250 * s) for s in range(5)),
                  *(_reading("house", s, 9_000 + 40 * s, 500 + 5 * s) for s in range(3)))
    worker = _worker(storage, world)

    first = await worker.run_once()
    # A fresh meter: its earliest reading is settled as the baseline (its lifetime counters, never
    # credited), then the latest mints what was generated between them: net 3,960 - 3,000 Wh.
    assert {m: (s.seq, s.minted, s.net_wh) for m, s in first.baselines.items()} == {
        "pv-roof": (0, 0, 3_000), "house": (0, 0, -8_500)}
    assert first.minted == {"pv-roof": (3_960 - 3_000) * WH, "house": 0}  # the house imports more: no GRID
    assert {m: (s.seq, s.baseline) for m, s in first.settled.items()} == {"pv-roof": (4, False), "house": (2, False)}
    assert await world.grid(pv) == 960 * WH and await world.grid(house) == 0
    on_chain = await world.on_chain(pv)
    assert (on_chain.settled_net_generation_wh, on_chain.baseline_net_generation_wh) == (3_960, 3_000)
    assert await _settlements(storage) == [
        ("house", 0, "minted", None, True, 0),
        ("house", 2, "minted", None, True, 0),
        ("pv-roof", 0, "minted", None, True, 0),
        ("pv-roof", 4, "minted", None, True, 960 * WH),
    ]

    await _ingest(storage, *(_reading("pv-roof", s, 1_000 + 10 * s, 4_000 + 250 * s) for s in range(5, 8)))
    second = await worker.run_once()
    # The chain holds a baseline now: only the latest is sent, and only the new surplus is minted.
    assert second.baselines == {}
    assert second.minted == {"pv-roof": (5_750 - 1_070 - 3_960) * WH}  # 720 Wh more, nothing twice
    assert await world.grid(pv) == (5_750 - 1_070 - 3_000) * WH
    third = await worker.run_once()  # nothing new: nothing sent
    assert (third.settled, third.already_settled, third.refused) == ({}, {}, {})
    assert (worker.stats.settled, worker.stats.baselines, worker.stats.minted_base_units) == (5, 2, 1_680 * WH)
    assert str(second.settled["pv-roof"].signature) != str(first.settled["pv-roof"].signature)


async def test_energy_before_registration_is_never_minted(storage: Storage, world: World) -> None:
    # A meter that joins with 12 MWh of lifetime export; its only reading so far becomes its baseline.
    meter = await world.meter("veteran")
    await _ingest(storage, _reading("veteran", 1, 2_000_000, 14_000_000))
    worker = _worker(storage, world)
    summary = await worker.run_once()
    assert summary.minted == {"veteran": 0} and summary.settled["veteran"].baseline
    assert summary.baselines["veteran"].net_wh == 12_000_000
    assert await world.grid(meter) == 0
    # What it exports afterwards is credited, and only that.
    await _ingest(storage, _reading("veteran", 2, 2_000_100, 14_000_900))
    assert (await worker.run_once()).minted == {"veteran": 800 * WH}
    assert await world.grid(meter) == 800 * WH


async def test_latest_meter_error_reading_is_passed_over(storage: Storage, world: World) -> None:
    meter = await world.meter("flaky")
    await _ingest(storage, _reading("flaky", 1, 0, 300), _reading("flaky", 2, 0, 900),
                  _reading("flaky", 3, 0, 5_000, meter_error=True))
    summary = await _worker(storage, world).run_once()
    # seq 1 is the baseline (net 300); seq 2 mints what came after it; seq 3 is never sent.
    assert {m: s.seq for m, s in summary.baselines.items()} == {"flaky": 1}
    assert {m: (s.seq, s.minted) for m, s in summary.settled.items()} == {"flaky": (2, 600 * WH)}
    assert (summary.settled["flaky"].passed_over, summary.settled["flaky"].net_wh) == (1, 900)
    assert await world.grid(meter) == 600 * WH
    # Only meter-error readings newer than the settlement: nothing to do.
    await _ingest(storage, _reading("flaky", 4, 0, 6_000, meter_error=True))
    again = await _worker(storage, world).run_once()
    assert (again.settled, again.refused, again.skipped) == ({}, {}, {})


async def test_a_reading_settled_by_someone_else_is_recorded_and_not_retried(
        storage: Storage, world: World) -> None:
    meter = await world.meter("relayed")
    readings = [_reading("relayed", s, 0, 100 * s) for s in range(1, 4)]
    await _ingest(storage, *readings)
    # The owner (anyone) relays seq 1 (the baseline) and seq 3 first: the program is trustless, the backend
    # is not the only door.
    g = world.deployment.grid
    for reading in (readings[0], readings[2]):
        other = await world.chain.send_transaction(
            energy.settle_transaction(g.energy_program, g.registry_program, g.mint, meter.owner,
                                      sign(reading, GATEWAY_KEY), bytes(GATEWAY_KEY.verify_key)), [world.relayer])
        other.raise_for_failure()

    worker = _worker(storage, world)
    summary = await worker.run_once()
    done = summary.already_settled["relayed"]
    assert (done.seq, done.outcome, done.refusal, done.minted) == (3, Outcome.ALREADY_SETTLED, "ReplayedReading", 0)
    assert await _settlements(storage) == [("relayed", 3, "already_settled", "ReplayedReading", False, 0)]
    again = await worker.run_once()
    assert (again.settled, again.already_settled, again.refused) == ({}, {}, {})
    assert worker.stats.already_settled == 1 and await world.grid(meter) == 200 * WH


async def test_other_refusals_are_named_counted_and_tried_with_the_next_reading(
        storage: Storage, world: World) -> None:
    meter = await world.meter("swapped")
    await _ingest(storage, _reading("swapped", 0, 0, 0), _reading("swapped", 1, 0, 800))
    worker = _worker(storage, world)
    assert (await worker.run_once()).minted == {"swapped": 800 * WH}
    # A replaced meter whose export register restarted: the chain refuses the rollback by name.
    await _ingest(storage, _reading("swapped", 2, 0, 10))
    for _ in range(2):
        summary = await worker.run_once()
        assert summary.refused == {"swapped": "CounterRollback"} and summary.settled == {}
    assert worker.stats.refused == {"CounterRollback": 2}
    assert [r[:3] for r in await _settlements(storage)] == [("swapped", 0, "minted"), ("swapped", 1, "minted")]
    # Counters past the settled ones again: the next reading settles and mints only the new surplus.
    await _ingest(storage, _reading("swapped", 3, 0, 1_000))
    assert (await worker.run_once()).minted == {"swapped": 200 * WH}
    assert await world.grid(meter) == 1_000 * WH


async def test_unregistered_and_wrongly_keyed_meters_are_skipped_with_one_log_line(
        storage: Storage, world: World, caplog: pytest.LogCaptureFixture) -> None:
    await world.meter("other-key", bytes(SigningKey(b"\x22" * 32).verify_key))
    await world.meter("good")
    await _ingest(storage, _reading("ghost", 1, 0, 500), _reading("other-key", 1, 0, 500),
                  _reading("good", 1, 0, 0), _reading("good", 2, 0, 500))
    worker = _worker(storage, world)
    with caplog.at_level(logging.DEBUG, logger="backend.minting.worker"):
        first = await worker.run_once()
        second = await worker.run_once()
    assert first.skipped == second.skipped == {"ghost": "not_registered", "other-key": "key_mismatch"}
    assert first.minted == {"good": 500 * WH} and second.minted == {}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2, warnings  # once per meter, then DEBUG
    assert any("ghost" in w and "not registered on chain" in w for w in warnings)
    assert worker.stats.skipped == {"not_registered": 2, "key_mismatch": 2}
    assert [r[:2] for r in await _settlements(storage)] == [("good", 1), ("good", 2)]


async def _until(done: Callable[[], bool]) -> None:
    """Poll the worker's counters (it is the system under test; it offers no event to wait on)."""
    async with asyncio.timeout(10):
        while True:
            if done():
                return
            await asyncio.sleep(0.02)


async def test_a_chain_outage_is_backed_off_and_the_loop_carries_on(tmp_path: Path) -> None:
    async with await open_storage(f"sqlite:///{tmp_path}/backend.db") as storage, LiteSVMRpcServer() as server:
        await storage.add_gateway(GW, bytes(GATEWAY_KEY.verify_key))
        world = await _world(LiteSVMChain(server.svm))  # set up in-process; the worker goes over the link
        meter = await world.meter("remote")
        await _ingest(storage, _reading("remote", 1, 0, 0), _reading("remote", 2, 0, 1_500))
        port = int(server.url.rsplit(":", 1)[1])
        async with Link(port) as link, RpcChain(link.url, poll_interval=0.02, timeout=5) as rpc:
            retry = ChainRetry(attempts=3, first_wait=0.02, max_wait=0.05)
            worker = MintingWorker(storage, rpc, world.deployment.grid, relayer=world.relayer, retry=retry,
                                   policy=NO_WAIT)
            with pytest.raises(ChainUnavailable, match="chain unreachable after 3 tries"):
                await worker.run_once()
            assert (worker.stats.chain_retries, worker.stats.chain_outages) == (2, 1)
            assert await _settlements(storage) == []

            loop = asyncio.create_task(worker.run(0.05))
            try:
                await _until(lambda: worker.stats.chain_outages >= 2)  # the loop survives an outage
                link.up = True
                await _until(lambda: worker.stats.settled >= 2)  # the baseline, then the reading that mints
            finally:
                loop.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await loop
        assert await world.grid(meter) == 1_500 * WH
        assert await _settlements(storage) == [("remote", 1, "minted", None, True, 0),
                                               ("remote", 2, "minted", None, True, 1_500 * WH)]
