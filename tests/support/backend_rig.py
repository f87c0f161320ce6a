"""A backend on real processes for end-to-end tests: ``backend localnet`` (LiteSVM over JSON-RPC) with the
programs deployed by ``gridtokenx programs deploy``, a gateway key from ``gateway keygen``, a Mosquitto
broker, PostgreSQL and Redis; ``backend run`` processes with the roles a test asks for, the gateway daemon.

    async with rig(tmp_path, pg_url) as r:
        backend = r.backend(0)                     # roles ingest, minter, indexer, cranks
        ...
        await check_against_chain(storage, chain, r.deployment)   # every row of D3-D5, every minted reading
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from solders.keypair import Keypair
from solders.signature import Signature

from backend.consistency import check_consistency
from backend.storage import Storage, trades
from gateway.keys import load_key
from programs.client import RpcChain
from programs.deployment import Deployment, load_keypair, save_keypair
from programs.energy_token import client as energy
from programs.events import decode_transaction_events
from programs.trading import client as trading
from tests.support.ackkey import backend_pub, write_ack_key
from tests.support.mosquitto import Mosquitto
from tests.support.processes import Proc, backend_cmd, gateway_cmd

__all__ = ["GW", "REDIS_URL", "Rig", "chain_events", "check_against_chain", "cli", "rig", "run_cmd", "until"]

GW = "gw-svc"
REDIS_URL = "redis://127.0.0.1:6379/0"
BACKEND_ROLES = ("ingest", "minter", "indexer", "cranks")


async def run_cmd(cmd: list[str], limit_s: float = 120) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(subprocess.run, cmd, capture_output=True, text=True, timeout=limit_s)


async def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return await run_cmd([sys.executable, "-m", "gridtokenx", *args])


async def until(check: Callable[[], Awaitable[bool]], within_s: float, what: str, procs: Sequence[Proc]) -> None:
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

    def backend_config(self, instance: int, *, shared: bool = False, roles: Sequence[str] = BACKEND_ROLES,
                       extra: str = "") -> Path:
        """``backend-<instance>.toml``; ``extra``: more TOML sections (e.g. ``[api]``)."""
        relayer = self.tmp / f"relayer-{instance}.json"
        path = self.tmp / f"backend-{instance}.toml"
        share = 'shared_group = "backends"\n' if shared else ""
        listed = ", ".join(f'"{role}"' for role in roles)
        path.write_text(
            f'roles = [{listed}]\ndata_dir = "{self.tmp}/data-{instance}"\n'
            f'instance = "backend-{instance}"\n\n'
            f'[database]\nurl = "{self.url}"\n\n'
            f'[mqtt]\nhost = "127.0.0.1"\nport = {self.broker.port}\nreconnect_max_s = 1\n'
            f'client_id = "backend-{self.broker.port}-{instance}"\nack_key_file = "{write_ack_key(self.tmp)}"\n'
            f'{share}\n'
            f'[chain]\nurl = "{self.rpc_url}"\ndeployment_file = "{self.tmp}/deployment.json"\n'
            f'keypair_file = "{relayer}"\npoll_interval_s = 0.05\n\n'
            f"[minter]\ninterval_s = 0.5\nretry_first_s = 0.5\nsweep_interval_s = 2\n\n"
            f"[indexer]\ninterval_s = 0.2\n\n[cranks]\ninterval_s = 0.5\n\n"
            f'[redis]\nurl = "{REDIS_URL}"\nchannel_prefix = "{self.prefix}"\n\n{extra}'
        )
        return path

    def start(self, cmd: list[str], name: str) -> Proc:
        proc = Proc(cmd, self.tmp / f"{name}-{len(self.procs)}.log")
        self.procs.append(proc)
        return proc

    def backend(self, instance: int, *, shared: bool = False, roles: Sequence[str] = BACKEND_ROLES,
                extra: str = "") -> Proc:
        config = self.backend_config(instance, shared=shared, roles=roles, extra=extra)
        return self.start(backend_cmd("run", "--config", str(config)), f"backend-{instance}")

    def gateway(self, sim_port: int, units: Sequence[int] = (1, 2)) -> Proc:
        meters = "".join(
            f'[[meter]]\nid = "m{u}"\nmodel = "sdm120"\nunit = {u}\nbus = "sim"\ninterval = 0.2\n'
            # The simulator runs 60 times faster than real time: allow 60 times the rated power.
            f"max_power_w = 2000000\n\n" for u in units)
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
        deployed = await cli("programs", "deploy", "--url", rpc_url, "--keypair", str(admin),
                             "--out", str(tmp_path / "deployment.json"))
        assert deployed.returncode == 0, deployed.stderr[-3000:]
        keygen = await run_cmd(gateway_cmd("keygen", "--out", str(tmp_path / "state" / "device.key"),
                                           "--gateway-id", GW))
        assert keygen.returncode == 0, keygen.stderr
        gateway_key = load_key(tmp_path / "state" / "device.key").public_key
        with Mosquitto(tmp_path / "broker") as broker:
            r = Rig(tmp_path, url, rpc_url, Deployment.load(tmp_path / "deployment.json"), admin,
                    load_keypair(tmp_path / "payment-gateway.json"), broker, gateway_key,
                    f"gtx-test-{uuid.uuid4().hex[:10]}", procs)
            added = await cli("backend", "add-gateway", "--config", str(r.backend_config(0)), "--id", GW,
                              "--public-key", gateway_key.hex())
            assert added.returncode == 0, added.stderr
            yield r
    finally:
        for proc in reversed(procs):
            proc.kill()


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
        found = await chain_events(chain, d, t.signature)
        executed = [e for e in found if isinstance(e, trading.TradeExecuted)]
        filled = [e for e in found if isinstance(e, trading.OrderFilled)]
        assert [(str(e.order), str(e.seller), str(e.buyer), e.amount, e.price, e.cost, e.fee) for e in executed] == [
            (t.order_address, t.seller, t.buyer, t.amount, t.price, t.cost, t.fee)]
        assert [f.remaining for f in filled] == [t.remaining]
    # D2: every reading MINTED by its own settlement names the transaction that settled it.
    for meter_id, seq, signature in await storage.fetch(
            "SELECT meter_id, seq, tx_signature FROM reading_states WHERE state = 'MINTED' AND settled_by_seq = seq"):
        assert signature is not None, (meter_id, seq)
        settled = {(e.meter_id, e.seq) for e in await chain_events(chain, d, signature)
                   if isinstance(e, energy.GridMinted | energy.BaselineRecorded)}
        assert (meter_id, seq) in settled


async def chain_events(chain: RpcChain, d: Deployment, signature: str) -> list[Any]:
    """Our events in a transaction, decoded from the chain's record of it by the programs' decoder."""
    found = await chain.client.get_transaction(Signature.from_string(signature), encoding="base64",
                                               max_supported_transaction_version=0)
    tx = found.value.transaction
    message = tx.transaction.message
    programs = [message.account_keys[ix.program_id_index] for ix in message.instructions]
    return [e.event for e in decode_transaction_events(tx.meta.log_messages, d.by_name(),
                                                       instruction_programs=programs).complete()]
