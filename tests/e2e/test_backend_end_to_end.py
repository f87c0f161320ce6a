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
import re
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.signature import Signature
from spl.token.instructions import create_associated_token_account

from backend.consistency import check_consistency
from backend.storage import Storage, balances, events, open_storage, orders, trades
from backend.storage import reading_states as rs
from gateway.keys import load_key
from programs.client import RpcChain
from programs.deployment import Deployment, load_keypair, save_keypair
from programs.energy_token import client as energy
from programs.events import decode_transaction_events
from programs.registry import client as registry
from programs.trading import client as trading
from tests.support import fixtures, market
from tests.support.ackkey import backend_pub, write_ack_key
from tests.support.mosquitto import Mosquitto
from tests.support.processes import Proc, backend_cmd, gateway_cmd, start_meter_sim

pytestmark = [pytest.mark.broker, pytest.mark.postgres, pytest.mark.modbus, pytest.mark.chain]
pg_url = fixtures.pg_url

GW = "gw-svc"
UNITS = [1, 2]
PRICE = 3_500_000  # THBC base units per kWh
REDIS_URL = "redis://127.0.0.1:6379/0"


async def _run(cmd: list[str], limit_s: float = 120) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(subprocess.run, cmd, capture_output=True, text=True, timeout=limit_s)


async def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return await _run([sys.executable, "-m", "gridtokenx", *args])


async def _until(check: Callable[[], Awaitable[bool]], within_s: float, what: str, procs: list[Proc]) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if await check():
            return
        for p in procs:
            assert p.running, f"{p.log_path.name} exited:\n{p.log()[-4000:]}"
        await asyncio.sleep(0.3)
    tails = "\n".join(f"--- {p.log_path.name}\n{p.log()[-3000:]}" for p in procs)
    raise AssertionError(f"timed out after {within_s} s waiting for {what}\n{tails}")


@dataclass
class Rig:
    tmp: Path
    url: str  # PostgreSQL
    rpc_url: str
    deployment: Deployment
    admin: Path
    payment_gateway: Keypair
    broker: Mosquitto
    gateway_key: bytes
    prefix: str
    procs: list[Proc] = field(default_factory=list)

    def backend_config(self, instance: int, *, shared: bool = False) -> Path:
        relayer = self.tmp / f"relayer-{instance}.json"
        path = self.tmp / f"backend-{instance}.toml"
        share = 'shared_group = "backends"\n' if shared else ""
        path.write_text(
            f'roles = ["ingest", "minter", "indexer", "cranks"]\ndata_dir = "{self.tmp}/data-{instance}"\n'
            f'instance = "backend-{instance}"\n\n'
            f'[database]\nurl = "{self.url}"\n\n'
            f'[mqtt]\nhost = "127.0.0.1"\nport = {self.broker.port}\nreconnect_max_s = 1\n'
            f'client_id = "backend-{self.broker.port}-{instance}"\nack_key_file = "{write_ack_key(self.tmp)}"\n'
            f'{share}\n'
            f'[chain]\nurl = "{self.rpc_url}"\ndeployment_file = "{self.tmp}/deployment.json"\n'
            f'keypair_file = "{relayer}"\npoll_interval_s = 0.05\n\n'
            f"[minter]\ninterval_s = 0.5\nretry_first_s = 0.5\nsweep_interval_s = 2\n\n"
            f"[indexer]\ninterval_s = 0.2\n\n[cranks]\ninterval_s = 0.5\n\n"
            f'[redis]\nurl = "{REDIS_URL}"\nchannel_prefix = "{self.prefix}"\n'
        )
        return path

    def start(self, cmd: list[str], name: str) -> Proc:
        proc = Proc(cmd, self.tmp / f"{name}-{len(self.procs)}.log")
        self.procs.append(proc)
        return proc

    def backend(self, instance: int, *, shared: bool = False) -> Proc:
        return self.start(backend_cmd("run", "--config", str(self.backend_config(instance, shared=shared))),
                          f"backend-{instance}")

    def gateway(self, sim_port: int) -> Proc:
        meters = "".join(
            f'[[meter]]\nid = "m{u}"\nmodel = "sdm120"\nunit = {u}\nbus = "sim"\ninterval = 0.2\n'
            # The simulator runs 60 times faster than real time: allow 60 times the rated power.
            f"max_power_w = 2000000\n\n" for u in UNITS)
        config = self.tmp / "gateway.toml"
        config.write_text(
            f'[gateway]\nid = "{GW}"\n\n'
            f'[[bus]]\nname = "sim"\ntype = "tcp"\nhost = "127.0.0.1"\nport = {sim_port}\ntimeout = 1.0\n\n'
            f'{meters}[mqtt]\nhost = "127.0.0.1"\nport = {self.broker.port}\nack_timeout_s = 2.0\n'
            f'ack_timeout_max_s = 4.0\nreconnect_max_s = 1\nbatch_size = 200\n'
            f'backend_key_file = "{backend_pub(self.tmp)}"\n\n'
            f'[outbox]\npath = "{self.tmp}/state/outbox.db"\n\n[key]\npath = "{self.tmp}/state/device.key"\n'
        )
        return self.start(gateway_cmd("run", "--config", str(config)), "gateway")


@contextlib.asynccontextmanager
async def rig(tmp_path: Path, url: str) -> AsyncIterator[Rig]:
    procs: list[Proc] = []
    localnet = Proc(backend_cmd("localnet", "--data-dir", str(tmp_path / "localnet"), "--port", "0", "--bare"),
                    tmp_path / "localnet.log")
    procs.append(localnet)
    try:
        deadline = time.monotonic() + 30
        while not (m := re.search(r"localnet ready: (http://\S+)", localnet.log())):
            assert localnet.running and time.monotonic() < deadline, localnet.log()
            await asyncio.sleep(0.1)
        rpc_url = m.group(1)
        admin = tmp_path / "admin.json"
        save_keypair(admin, Keypair())
        async with RpcChain(rpc_url, poll_interval=0.05) as chain:
            await chain.fund(load_keypair(admin).pubkey(), 1_000 * 10**9)
            for instance in (0, 1):
                save_keypair(tmp_path / f"relayer-{instance}.json", key := Keypair())
                await chain.fund(key.pubkey(), 100 * 10**9)
        deployed = await _cli("programs", "deploy", "--url", rpc_url, "--keypair", str(admin),
                        "--out", str(tmp_path / "deployment.json"))
        assert deployed.returncode == 0, deployed.stderr[-3000:]
        keygen = await _run(gateway_cmd("keygen", "--out", str(tmp_path / "state" / "device.key"), "--gateway-id", GW))
        assert keygen.returncode == 0, keygen.stderr
        gateway_key = load_key(tmp_path / "state" / "device.key").public_key
        with Mosquitto(tmp_path / "broker") as broker:
            r = Rig(tmp_path, url, rpc_url, Deployment.load(tmp_path / "deployment.json"), admin,
                    load_keypair(tmp_path / "payment-gateway.json"), broker, gateway_key,
                    f"gtx-test-{uuid.uuid4().hex[:10]}", procs)
            added = await _cli("backend", "add-gateway", "--config", str(r.backend_config(0)), "--id", GW,
                         "--public-key", gateway_key.hex())
            assert added.returncode == 0, added.stderr
            yield r
    finally:
        for proc in reversed(procs):
            proc.kill()


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
        done = await _cli("backend", "meters", "activate", meter_id, "--config", str(r.backend_config(0)),
                    "--authority", str(r.admin))
        assert done.returncode == 0 and "PENDING → ACTIVE" in done.stdout, done.stdout + done.stderr
        owners[meter_id] = owner
    return owners


@contextlib.asynccontextmanager
async def subscriber(prefix: str) -> AsyncIterator[list[dict[str, Any]]]:
    """A Redis subscriber to the live feed (until the API's /ws serves it)."""
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


async def check_against_chain(storage: Storage, chain: RpcChain, d: Deployment) -> None:
    """Every row of D3 (token accounts, escrow), D4 (orders) and D5 (trades) against the chain; every
    minted reading's transaction on chain."""
    report = await check_consistency(storage, chain, d)
    assert report.ok, "\n".join(map(str, report.discrepancies))
    assert report.checked["token_accounts"] >= 6 and report.checked["orders"] >= 1
    # D5: each trade row is the TradeExecuted event of its transaction, field by field.
    rows = await trades.list_trades(storage, limit=1000)
    assert rows
    for t in rows:
        found = await _events(chain, d, t.signature)
        executed = [e for e in found if isinstance(e, trading.TradeExecuted)]
        filled = [e for e in found if isinstance(e, trading.OrderFilled)]
        assert [(str(e.order), str(e.seller), str(e.buyer), e.amount, e.price, e.cost, e.fee) for e in executed] == [
            (t.order_address, t.seller, t.buyer, t.amount, t.price, t.cost, t.fee)]
        assert [f.remaining for f in filled] == [t.remaining]
    # D2: every reading MINTED by its own settlement names the transaction that settled it.
    for meter_id, seq, signature in await storage.fetch(
            "SELECT meter_id, seq, tx_signature FROM reading_states WHERE state = 'MINTED' AND settled_by_seq = seq"):
        assert signature is not None, (meter_id, seq)
        settled = {(e.meter_id, e.seq) for e in await _events(chain, d, signature)
                   if isinstance(e, energy.GridMinted | energy.BaselineRecorded)}
        assert (meter_id, seq) in settled


async def _events(chain: RpcChain, d: Deployment, signature: str) -> list[Any]:
    """Our events in a transaction, decoded from the chain's record of it by the programs' decoder."""
    found = await chain.client.get_transaction(Signature.from_string(signature), encoding="base64",
                                               max_supported_transaction_version=0)
    tx = found.value.transaction
    message = tx.transaction.message
    programs = [message.account_keys[ix.program_id_index] for ix in message.instructions]
    return [e.event for e in decode_transaction_events(tx.meta.log_messages, d.by_name(),
                                                       instruction_programs=programs).complete()]


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

    await _until(expired, 40, "the crank to expire the order", procs)
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
            gateway = r.gateway(sim_port)
            watched = [backend, gateway]
            await _until(lambda: _minted_both(storage), 90, "readings MINTED for both meters", watched)
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
                await _until(settled, 60, "every reading settled and the database equal to the chain", [backend])
            except AssertionError as exc:
                raise AssertionError("\n".join(last)) from exc
            await check_against_chain(storage, chain, r.deployment)
            await asyncio.sleep(1.0)  # the last events reach the subscriber
        finally:
            sim.kill()
            sim.wait(5)
            if sim.stdout is not None:
                sim.stdout.close()
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
            gateway = r.gateway(sim_port)
            await _until(lambda: _minted_both(storage), 90, "readings MINTED for both meters",
                         [first, second, gateway])
            second.kill()  # mid-stream: whatever it was sending, indexing or storing is cut off
            await asyncio.sleep(1.0)
            second = r.start(backend_cmd("run", "--config", str(r.tmp / "backend-1.toml")), "backend-1")
            order = await trade_and_expire(r, chain, storage, owners, [first, second, gateway])
            sim.kill()
            # The gateway empties its outbox into the two backends, then stops.
            await _until(lambda: _outbox_empty(r.tmp / "state" / "outbox.db"), 60, "the outbox to drain",
                         [first, second, gateway])
            outbox = sqlite3_counts(r.tmp / "state" / "outbox.db")
            assert gateway.terminate() == 0, gateway.log()[-3000:]
            last: list[str] = []

            async def settled() -> bool:
                counts = await rs.state_counts(storage)
                report = await check_consistency(storage, chain, r.deployment)
                unsigned = await storage.fetch("SELECT count(*) FROM reading_states WHERE state = 'MINTED' "
                                               "AND settled_by_seq = seq AND tx_signature IS NULL")
                last[:] = [str(counts), str(unsigned), *map(str, report.discrepancies)]
                return counts["STORED"] == counts["PROCESSING"] == 0 and report.ok and unsigned[0][0] == 0

            try:
                await _until(settled, 60, "every reading settled, signed, and the database equal to the chain",
                             [first, second])
            except AssertionError as exc:
                raise AssertionError("\n".join(last)) from exc
            await check_against_chain(storage, chain, r.deployment)
            await asyncio.sleep(1.0)
        finally:
            sim.kill()
            sim.wait(5)
            if sim.stdout is not None:
                sim.stdout.close()
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


async def _outbox_empty(path: Path) -> bool:
    import sqlite3

    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
        return int(db.execute("SELECT count(*) FROM outbox").fetchone()[0]) == 0
