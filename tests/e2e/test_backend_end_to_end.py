"""The backend as a service, end to end on real processes:

    meter-sim ─► gateway run ─► Mosquitto ─► backend run (ingest, minter, indexer, cranks) ─► PostgreSQL
                                                  │  JSON-RPC                        │ Redis pub/sub
                                             backend localnet (LiteSVM, programs deployed with
                                             `gridtokenx programs deploy`)          └─► a subscriber

Users act with their own keys over JSON-RPC (register, sell, buy); the operator activates meters with
`gridtokenx backend meters activate`. Every row of D3-D5 is checked against the chain, each reading the
backend minted names a transaction that settled it, and the feed subscriber gets each event once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from spl.token.instructions import create_associated_token_account

from backend.consistency import check_consistency
from backend.storage import Storage, balances, events, open_storage, orders
from backend.storage import reading_states as rs
from programs.client import RpcChain
from programs.registry import client as registry
from programs.trading import client as trading
from tests.support import fixtures, market
from tests.support.backend_rig import GW, REDIS_URL, Rig, check_against_chain, cli, rig, until
from tests.support.processes import Proc, backend_cmd, start_meter_sim, stop_meter_sim

pytestmark = [pytest.mark.broker, pytest.mark.postgres, pytest.mark.modbus, pytest.mark.chain]
pg_url = fixtures.pg_url

UNITS = [1, 2]
PRICE = 3_500_000  # THBC base units per kWh


async def register_meters(r: Rig, chain: RpcChain) -> dict[str, Keypair]:
    """Each meter's owner registers (their own transaction); the operator activates (the CLI)."""
    owners = {}
    d = r.deployment
    for unit in UNITS:
        meter_id, owner = f"m{unit}", Keypair()
        await chain.fund(owner.pubkey(), 10**9)
        ixs = [registry.register_user(d.registry, owner.pubkey(), registry.UserKind.PROSUMER),
               registry.register_meter(d.registry, owner.pubkey(), meter_id, r.gateway_key),
               create_associated_token_account(owner.pubkey(), owner.pubkey(), d.grid_mint),
               create_associated_token_account(owner.pubkey(), owner.pubkey(), d.thbc_mint)]
        (await chain.send_transaction(ixs, [owner])).raise_for_failure()
        done = await cli("backend", "meters", "activate", meter_id, "--config", str(r.backend_config(0)),
                         "--authority", str(r.admin))
        assert done.returncode == 0 and "PENDING → ACTIVE" in done.stdout, done.stdout + done.stderr
        owners[meter_id] = owner
    return owners


@contextlib.asynccontextmanager
async def subscriber(prefix: str) -> AsyncIterator[list[dict[str, Any]]]:
    """A Redis subscriber to the live feed (a /ws client of the api role: tests/e2e/test_api_end_to_end.py)."""
    got: list[dict[str, Any]] = []
    client = redis.from_url(REDIS_URL)
    pubsub = client.pubsub()
    await pubsub.subscribe(f"{prefix}:events")

    async def pump() -> None:
        async for message in pubsub.listen():
            if message.get("type") == "message":
                got.append(json.loads(message["data"]))

    task = asyncio.create_task(pump())
    try:
        yield got
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await pubsub.aclose()
        await client.aclose()


async def _minted_both(storage: Storage) -> bool:
    rows = await storage.fetch(
        "SELECT meter_id, count(*) FROM reading_states WHERE state = 'MINTED' AND tx_signature IS NOT NULL "
        "AND settled_by_seq = seq AND minted_base_units > 0 GROUP BY meter_id")
    return {r[0] for r in rows} == {f"m{u}" for u in UNITS}


async def trade_and_expire(r: Rig, chain: RpcChain, storage: Storage, owners: dict[str, Keypair],
                           procs: list[Proc]) -> str:
    """The seller with the most GRID offers half; a consumer buys part of it twice; the crank expires the
    rest and the escrow goes back. Returns the order's address."""
    d = r.deployment
    seller_meter = max(owners, key=lambda m: 0)  # decided below by balance
    best = -1
    for meter_id, owner in owners.items():
        amount = (await balances.wallet_balances(storage, str(owner.pubkey())))["GRID"]
        if amount > best:
            seller_meter, best = meter_id, amount
    seller = await market.existing_wallet(chain, d, owners[seller_meter])
    offered = best // 2
    assert offered > 1_000, best
    buyer = await market.new_wallet(chain, d, kind=registry.UserKind.CONSUMER, thbc=1_000 * 10**6,
                                    payment_gateway=r.payment_gateway)
    expires = await market.chain_now(chain) + 8
    await market.create_order(chain, d, seller, 7, offered, PRICE, expires)
    await market.buy(chain, d, buyer, seller, 7, offered // 4)
    await market.buy(chain, d, buyer, seller, 7, offered // 4)
    order = str(market.order_address(d, seller, 7))

    async def expired() -> bool:
        row = await orders.get_order(storage, order)
        return row is not None and row.state == "EXPIRED"

    await until(expired, 40, "the crank to expire the order", procs)
    row = await orders.get_order(storage, order)
    assert row is not None and (row.amount, row.remaining, row.escrow) == (offered, offered - 2 * (offered // 4), 0)
    vault = trading.vault_address(d.trading, Pubkey.from_string(order))[0]
    assert await chain.get_account(vault) is None  # closed, the rest refunded
    return order


async def test_meter_to_trade_through_the_backend_service(tmp_path: Path, pg_url: str) -> None:
    async with rig(tmp_path, pg_url) as r, RpcChain(r.rpc_url, poll_interval=0.05) as chain, \
            await open_storage(pg_url) as storage, subscriber(r.prefix) as feed:
        owners = await register_meters(r, chain)
        backend = r.backend(0)
        sim, sim_port = start_meter_sim(UNITS, tmp_path / "sim.log")
        try:
            gateway = r.gateway(sim_port, UNITS)
            watched = [backend, gateway]
            await until(lambda: _minted_both(storage), 90, "readings MINTED for both meters", watched)
            order = await trade_and_expire(r, chain, storage, owners, watched)
            # Quiet: no more readings; let the minter and the indexer catch up, then compare.
            sim.kill()
            assert gateway.terminate() == 0, gateway.log()[-3000:]

            last: list[str] = []

            async def settled() -> bool:
                counts = await rs.state_counts(storage)
                report = await check_consistency(storage, chain, r.deployment)
                stuck = await storage.fetch(
                    "SELECT r.meter_id, r.seq, r.flags, r.timestamp_ms, r.received_ms, p.settled_seq, p.claimed_by "
                    "FROM readings r LEFT JOIN reading_states s USING (gateway_id, meter_id, seq) "
                    "LEFT JOIN mint_progress p USING (gateway_id, meter_id) WHERE s.state IS NULL")
                last[:] = [str(counts), str(stuck), *map(str, report.discrepancies)]
                return counts["STORED"] == counts["PROCESSING"] == 0 and report.ok

            try:
                await until(settled, 60, "every reading settled and the database equal to the chain", [backend])
            except AssertionError as exc:
                raise AssertionError("\n".join(last)) from exc
            await check_against_chain(storage, chain, r.deployment)
            await asyncio.sleep(1.0)  # the last events reach the subscriber
        finally:
            stop_meter_sim(sim)
        assert backend.terminate() == 0, backend.log()[-3000:]

        stored = await events.events_after(storage, 0, limit=100_000)
        received = [e["id"] for e in feed]
        assert sorted(received) == received and len(set(received)) == len(received)  # each once, in order
        assert received == [e.id for e in stored]
        kinds = {e.kind for e in stored}
        assert {"user_registered", "meter_registered", "meter_status_changed", "minted", "order_created",
                "trade_executed", "order_expired"} <= kinds
        assert [e.kind for e in stored if e.subject == order] == [
            "order_created", "order_filled", "trade_executed", "order_filled", "trade_executed", "order_expired"]


async def _reindexed(r: Rig, tmp: Path) -> set[tuple[str, int, int, str]]:
    """Every event of our programs on the chain, read from scratch by an indexer of its own into a fresh
    database: what "applied once" must match."""
    from backend.feed import InProcessFeed
    from backend.indexer import Decoder, Indexer, RpcSource

    async with await open_storage(f"sqlite:///{tmp}/reindex.db") as fresh, \
            RpcChain(r.rpc_url, poll_interval=0.05) as chain:

        async def read(address: Pubkey) -> bytes | None:
            account = await chain.get_account(address)
            return None if account is None else bytes(account.data)

        d = r.deployment
        indexer = Indexer(fresh, RpcSource(chain.client, list(d.programs.values())), Decoder(d, read), d,
                          InProcessFeed())
        await indexer.catch_up()
        return {(e.signature, e.ix_index, e.event_index, e.kind)
                for e in await events.events_after(fresh, 0, limit=100_000)}


async def test_two_backends_with_every_role_on_one_database(tmp_path: Path, pg_url: str) -> None:
    from tests.support.inprocess import check_exactly_once

    async with rig(tmp_path, pg_url) as r, RpcChain(r.rpc_url, poll_interval=0.05) as chain, \
            await open_storage(pg_url) as storage, subscriber(r.prefix) as feed:
        owners = await register_meters(r, chain)
        for instance in (0, 1):  # a dead worker's meters are taken over after 3 s
            config = r.backend_config(instance, shared=True)
            config.write_text(config.read_text().replace("[minter]\n", "[minter]\nlease_s = 3\n"))
        first = r.start(backend_cmd("run", "--config", str(r.tmp / "backend-0.toml")), "backend-0")
        second = r.start(backend_cmd("run", "--config", str(r.tmp / "backend-1.toml")), "backend-1")
        sim, sim_port = start_meter_sim(UNITS, tmp_path / "sim.log")
        try:
            gateway = r.gateway(sim_port, UNITS)
            await until(lambda: _minted_both(storage), 90, "readings MINTED for both meters",
                        [first, second, gateway])
            second.kill()  # mid-stream: whatever it was sending, indexing or storing is cut off
            await asyncio.sleep(1.0)
            second = r.start(backend_cmd("run", "--config", str(r.tmp / "backend-1.toml")), "backend-1")
            order = await trade_and_expire(r, chain, storage, owners, [first, second, gateway])
            sim.kill()
            # The gateway empties its outbox into the two backends, then stops.
            # A reading polled just before the kill may still be on its way into the outbox, so wait until
            # the outbox is empty and its counters have stood still for a while, not merely empty once.
            outbox_db = r.tmp / "state" / "outbox.db"
            quiet = _DrainedAndQuiet(outbox_db, quiet_s=2.0)
            await until(quiet, 60, "the outbox to drain and stay quiet", [first, second, gateway])
            assert gateway.terminate() == 0, gateway.log()[-3000:]
            outbox = sqlite3_counts(outbox_db)
            assert outbox == quiet.counts and await _outbox_empty(outbox_db), \
                "the gateway committed more after it went quiet"
            last: list[str] = []

            async def settled() -> bool:
                counts = await rs.state_counts(storage)
                report = await check_consistency(storage, chain, r.deployment)
                unsigned = await storage.fetch("SELECT count(*) FROM reading_states WHERE state = 'MINTED' "
                                               "AND settled_by_seq = seq AND tx_signature IS NULL")
                last[:] = [str(counts), str(unsigned), *map(str, report.discrepancies)]
                return counts["STORED"] == counts["PROCESSING"] == 0 and report.ok and unsigned[0][0] == 0

            try:
                await until(settled, 60, "every reading settled, signed, and the database equal to the chain",
                            [first, second])
            except AssertionError as exc:
                raise AssertionError("\n".join(last)) from exc
            await check_against_chain(storage, chain, r.deployment)
            await asyncio.sleep(1.0)
        finally:
            stop_meter_sim(sim)
        assert first.terminate() == 0, first.log()[-3000:]
        assert second.terminate() == 0, second.log()[-3000:]

        # No reading stored twice: every reading the gateway committed is held exactly once.
        check_exactly_once(await storage.readings(GW), r.gateway_key, outbox)
        # No event applied twice, none missed: the same set as an indexer of its own finds on the chain.
        stored = await events.events_after(storage, 0, limit=100_000)
        keys = [(e.signature, e.ix_index, e.event_index, e.kind) for e in stored]
        assert len(keys) == len(set(keys)) and set(keys) == await _reindexed(r, tmp_path)
        received = [e["id"] for e in feed]
        assert received == sorted(set(received)) and set(received) == {e.id for e in stored}
        # No double mint: GRID on chain is exactly what the settle events say, and per meter exactly its
        # settled generation above its baseline.
        mint = await chain.get_account(r.deployment.grid_mint)
        assert mint is not None
        supply = int.from_bytes(bytes(mint.data)[36:44], "little")
        minted = sum(e.payload["minted"] for e in stored if e.kind == "minted")
        assert supply == minted > 0
        for meter_id in owners:
            on_chain = await registry.fetch_meter(chain, r.deployment.registry, meter_id)
            assert on_chain is not None
            assert sum(e.payload["minted"] for e in stored if e.kind == "minted" and e.meter_id == meter_id) == \
                on_chain.generation_since_baseline_wh * 10**6
        assert [e.kind for e in stored if e.subject == order][-1] == "order_expired"


def sqlite3_counts(path: Path) -> dict[str, int]:
    """The gateway's committed readings per meter (its outbox counters), read-only while it runs."""
    import sqlite3

    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
        return dict(db.execute("SELECT meter_id, next_counter FROM counters").fetchall())


class _DrainedAndQuiet:
    """True once the outbox is empty and its counters have not moved for ``quiet_s`` seconds."""

    def __init__(self, path: Path, quiet_s: float) -> None:
        self.path, self.quiet_s = path, quiet_s
        self.counts: dict[str, int] = {}
        self.since = 0.0

    async def __call__(self) -> bool:
        now = asyncio.get_running_loop().time()
        counts = sqlite3_counts(self.path)
        if counts != self.counts or not await _outbox_empty(self.path):
            self.counts, self.since = counts, now
            return False
        return now - self.since >= self.quiet_s


async def _outbox_empty(path: Path) -> bool:
    import sqlite3

    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
        return int(db.execute("SELECT count(*) FROM outbox").fetchone()[0]) == 0
