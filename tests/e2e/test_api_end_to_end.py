"""The api role of a real backend, driven only through HTTP by `gridtokenx wallet` subprocesses:

    meter-sim ─► gateway run ─► Mosquitto ─► backend run (ingest, minter, indexer, cranks, api) ─► PostgreSQL
                                                  │ JSON-RPC                         │ Redis feed
                                             backend localnet (programs deployed)    └─► /ws clients
    gridtokenx wallet … ─── HTTP ──► api

A prosumer and a consumer sign in and register, the prosumer registers its meter with its gateway's key,
the operator activates it and the payment operator issues THBC — every one a `gridtokenx wallet` command
that signs locally. The gateway's readings are minted; the prosumer sells half of its GRID and the
consumer buys part of it. Two WebSocket clients on /ws (everything, and the consumer's events) receive
every event the indexer recorded exactly once, in order; the database ends equal to the chain.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sys
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from backend.storage import events, open_storage, reading_states
from gridtokenx.keyfile import load_keypair_file
from programs.client import RpcChain
from tests.support import fixtures
from tests.support.backend_rig import Rig, check_against_chain, rig, until
from tests.support.processes import Proc, start_meter_sim, stop_meter_sim

pytestmark = [pytest.mark.broker, pytest.mark.postgres, pytest.mark.modbus, pytest.mark.chain]
pg_url = fixtures.pg_url

ROLES = ("ingest", "minter", "indexer", "cranks", "api")
KWH = 10**9


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _api_section(r: Rig, port: int) -> str:
    operators = [str(load_keypair_file(r.admin).pubkey()), str(r.payment_gateway.pubkey())]
    return (f'[api]\nhost = "127.0.0.1"\nport = {port}\ndomain = "127.0.0.1:{port}"\nuri = "http://127.0.0.1:{port}"\n'
            f'token_key_file = "{r.tmp}/api-token.key"\noperators = {json.dumps(operators)}\n'
            f'fee_payer_keypair = "{r.tmp}/relayer-0.json"\n')


async def wallet(keypair: Path, *args: str) -> str:
    """One `gridtokenx wallet` command, as a user runs it."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gridtokenx", "wallet", "--keypair", str(keypair), *args, env=dict(os.environ),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, f"wallet {' '.join(args)}: {proc.returncode}\n{out.decode()}\n{err.decode()}"
    return out.decode()


@contextlib.asynccontextmanager
async def listening(url: str) -> AsyncIterator[list[dict[str, Any]]]:
    """A /ws client from the first event on (``since=0``): every message it receives, in order."""
    got: list[dict[str, Any]] = []
    async with websockets.connect(url) as ws:

        async def pump() -> None:
            async for message in ws:
                got.append(json.loads(message))

        task = asyncio.create_task(pump())
        try:
            yield got
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def test_wallets_trade_through_the_api_of_a_backend_running_every_role(tmp_path: Path, pg_url: str) -> None:
    async with rig(tmp_path, pg_url) as r, RpcChain(r.rpc_url, poll_interval=0.05) as chain, \
            await open_storage(pg_url) as storage:
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        backend = r.backend(0, roles=ROLES, extra=_api_section(r, port))
        sim, sim_port = start_meter_sim([1], tmp_path / "sim.log")
        procs: list[Proc] = [backend]
        try:
            gateway = r.gateway(sim_port, [1])
            procs.append(gateway)
            async with httpx.AsyncClient(base_url=url, timeout=10) as http:

                async def healthy() -> bool:
                    with contextlib.suppress(httpx.HTTPError):
                        return (await http.get("/healthz")).status_code == 200
                    return False

                await until(healthy, 30, "the api to answer /healthz", procs)
                seller, buyer = tmp_path / "seller.json", tmp_path / "buyer.json"
                operator, payments_operator = r.admin, tmp_path / "payment-gateway.json"
                await asyncio.gather(wallet(seller, "new"), wallet(buyer, "new"))
                seller_key, buyer_key = load_keypair_file(seller), load_keypair_file(buyer)
                for key in (seller_key, buyer_key, r.payment_gateway):  # rent for their accounts (the api pays fees)
                    await chain.fund(key.pubkey(), 10**9)
                ws_url = url.replace("http://", "ws://") + "/ws?since=0"
                async with listening(ws_url) as everything, \
                        listening(f"{ws_url}&wallet={buyer_key.pubkey()}") as buyers, \
                        listening(f"{ws_url}&meter=m1") as meter_feed:
                    signed_in = await asyncio.gather(*(wallet(k, "login", url)
                                                       for k in (seller, buyer, operator, payments_operator)))
                    assert [s.endswith("(operator)\n") for s in signed_in] == [False, False, True, True]
                    await asyncio.gather(wallet(seller, "register", "Rooftop PV", "--kind", "prosumer"),
                                         wallet(buyer, "register", "Corner Cafe", "--kind", "consumer"))
                    await wallet(seller, "meters", "register", "m1", "--public-key", r.gateway_key.hex())
                    await asyncio.gather(wallet(operator, "meters", "activate", "m1"),
                                         wallet(payments_operator, "issue", str(buyer_key.pubkey()), "100",
                                                "--reference", "DEP-E2E-1"))

                    async def minted() -> bool:  # the gateway's readings, settled by the minter
                        return int((await http.get("/meters/m1")).json()["minted"]) >= 10**7

                    await until(minted, 30, "GRID minted for the prosumer's meter", procs)
                    sim.kill()
                    assert gateway.terminate() == 0, gateway.log()[-3000:]
                    procs.remove(gateway)

                    grid = json.loads(await wallet(seller, "--json", "balance"))["balances"]["grid"]
                    offered, bought = grid // 2, grid // 8
                    sold = json.loads(await wallet(seller, "--json", "sell", _kwh(offered), "--price", "3.5"))
                    order = sold["details"]["order"]
                    assert sold["indexed"] is True and sold["details"]["amount"] == offered
                    assert order in await wallet(buyer, "orders", "--book")
                    await wallet(buyer, "buy", order, _kwh(bought))  # part of it
                    mine = json.loads(await wallet(seller, "--json", "orders"))["items"]
                    assert [(o["address"], o["state"], o["remaining"]) for o in mine] == [
                        (order, "PARTIALLY_FILLED", offered - bought)]
                    held = json.loads(await wallet(buyer, "--json", "balance"))["balances"]
                    assert held["grid"] == bought and held["thbc"] < 100 * 10**6

                    # Everything the indexer recorded reached both clients, each event once and in order.
                    async def delivered() -> bool:
                        stored = await events.events_after(storage, 0, limit=100_000)
                        return [e.get("id") for e in everything[-1:]] == [stored[-1].id]

                    await until(delivered, 15, "the last event on /ws", procs)

                    # /metrics: the pipeline's figures as the database holds them, whichever role did the work.
                    figures = _metrics((await http.get("/metrics")).text)
                    mints = await events.events_after(storage, 0, limit=100_000, kinds=["minted"])
                    assert figures["gridtokenx_mints"] == len(mints) > 0
                    assert figures['gridtokenx_events_indexed{kind="minted"}'] == len(mints)
                    assert figures['gridtokenx_events_indexed{kind="trade_executed"}'] == 1
                    states = await reading_states.state_counts(storage)
                    assert figures['gridtokenx_readings_by_state{state="MINTED"}'] == states["MINTED"] > 0
                    assert figures["gridtokenx_readings_stored"] == sum(
                        states[k] for k in ("STORED", "PROCESSING", "MINTED", "FAILED"))
                    # The minting retry queue: the meter's owner (or an operator) sees it; nobody else does.
                    seller_token = _session(seller)
                    queue = await http.get("/meters/m1/failed-readings",
                                           headers={"Authorization": f"Bearer {seller_token}"})
                    assert queue.status_code == 200 and queue.json() == {"meter_id": "m1", "failed": []}
                    refused = await http.get("/meters/m1/failed-readings",
                                             headers={"Authorization": f"Bearer {_session(buyer)}"})
                    assert refused.status_code == 403 and refused.json()["error"]["code"] == "not_owner"
            stored = await events.events_after(storage, 0, limit=100_000)
            assert [e["type"] for e in everything if "id" not in e] == ["ready"]  # the backlog's end, once
            received = [e for e in everything if "id" in e]
            assert [e["id"] for e in received] == [e.id for e in stored]  # each once, in order, none missed
            assert [(e["kind"], e["signature"], e["data"]) for e in received] == [
                (e.kind, e.signature, e.payload) for e in stored]
            mine_stored = await events.events_after(storage, 0, limit=100_000, wallet=str(buyer_key.pubkey()))
            assert [e["id"] for e in buyers if "id" in e] == [e.id for e in mine_stored]
            meter_stored = await events.events_after(storage, 0, limit=100_000, meter_id="m1")
            assert [e["id"] for e in meter_feed if "id" in e] == [e.id for e in meter_stored]
            assert {e.kind for e in meter_stored} >= {"meter_registered", "meter_status_changed", "minted"}
            assert all(e["meter_id"] == "m1" for e in meter_feed if "id" in e)
            assert [e.kind for e in mine_stored] == ["user_registered", "thbc_issued", "order_filled",
                                                     "trade_executed"]
            kinds = [e.kind for e in stored]
            for kind in ("user_registered", "meter_registered", "meter_status_changed", "minted", "thbc_issued",
                         "order_created", "order_filled", "trade_executed"):
                assert kind in kinds, kind
            [trade] = [e for e in received if e["kind"] == "trade_executed"]
            assert (trade["subject"], trade["data"]["amount"], trade["data"]["remaining"]) == (
                order, bought, offered - bought)
            await check_against_chain(storage, chain, r.deployment)
        finally:
            stop_meter_sim(sim)
        assert backend.terminate() == 0, backend.log()[-3000:]


def _session(keypair: Path) -> str:
    """The session token `gridtokenx wallet login` keeps next to the key (0600)."""
    return str(json.loads(keypair.with_name(keypair.name + ".session").read_text())["token"])


def _metrics(text: str) -> dict[str, float]:
    """Prometheus text as {series: value} (comments skipped)."""
    series = (line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
    return {name: float(value) for name, value in series}


def _kwh(base_units: int) -> str:
    """GRID base units as the kWh a person types (exact: 9 decimals at most)."""
    return str(Decimal(base_units).scaleb(-9))
