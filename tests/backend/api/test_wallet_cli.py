"""`gridtokenx wallet` as a user runs it (a subprocess), against the api over HTTP: new, login,
register, a meter registered and activated by the operator, THBC issued by the payment operator, sell,
the book, buy part, cancel, balances, redeem — the key stays in its 0600 file."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from gridtokenx.keyfile import load_keypair_file, write_keypair_file
from tests.backend.api.api_support import RunningApi, TestWallet, running_api
from tests.backend.api.test_api_market import KWH, THBC, seed_grid
from tests.support.fixtures import pg_url  # noqa: F401

pytestmark = [pytest.mark.postgres, pytest.mark.chain]
ROOT = Path(__file__).parents[3]


@pytest.fixture
async def api(pg_url: str, tmp_path: Path) -> AsyncIterator[RunningApi]:  # noqa: F811
    async with running_api(pg_url, tmp_path) as running:
        yield running


async def wallet(keypair: Path, *args: str, ok: bool = True) -> str:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'firmware-sim'}"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gridtokenx", "wallet", "--keypair", str(keypair), *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert (proc.returncode == 0) == ok, f"{args}: {proc.returncode}\n{out.decode()}\n{err.decode()}"
    return (out if ok else err).decode()


async def test_wallet_cli_trades_through_the_api(api: RunningApi, tmp_path: Path) -> None:
    seller_file, buyer_file = tmp_path / "seller.json", tmp_path / "buyer.json"
    await wallet(seller_file, "new")
    await wallet(buyer_file, "new")
    assert stat.S_IMODE(seller_file.stat().st_mode) == 0o600
    seller = TestWallet(load_keypair_file(seller_file))
    buyer = TestWallet(load_keypair_file(buyer_file))
    assert (await wallet(seller_file, "address")).strip() == seller.address
    for w in (seller, buyer):
        await api.chain.fund(w.key.pubkey(), 10**9)
    assert "signed in" in await wallet(seller_file, "login", api.url)
    await wallet(buyer_file, "login", api.url)
    await wallet(seller_file, "register", "Solar Farm", "--kind", "prosumer")
    await wallet(buyer_file, "register", "Noodle Shop", "--kind", "consumer")
    await seed_grid(api, seller, 5 * KWH)
    # The operators' wallets: the registry authority activates meters, the payment operator issues THBC.
    admin_file, payer_file = tmp_path / "admin.json", tmp_path / "payments-operator.json"
    write_keypair_file(admin_file, api.admin)
    write_keypair_file(payer_file, api.deployment.payment_gateway)
    await api.chain.fund(api.deployment.payment_gateway.pubkey(), 10**9)
    for operator in (admin_file, payer_file):
        assert "(operator)" in await wallet(operator, "login", api.url)
    gateway_key = bytes(SigningKey.generate().verify_key).hex()
    await wallet(seller_file, "meters", "register", "cli-m1", "--public-key", gateway_key)
    assert "not_operator" in await wallet(seller_file, "meters", "activate", "cli-m1", ok=False)
    await wallet(admin_file, "meters", "activate", "cli-m1")
    listed = await wallet(seller_file, "meters")
    assert "cli-m1" in listed and "ACTIVE" in listed
    assert "not_operator" in await wallet(buyer_file, "issue", buyer.address, "1", "--reference", "X", ok=False)
    await wallet(payer_file, "issue", buyer.address, "100", "--reference", "DEP-CLI")
    assert "ReferenceAlreadyUsed" in await wallet(payer_file, "issue", buyer.address, "100", "--reference", "DEP-CLI",
                                                  ok=False)

    sold = json.loads(await wallet(seller_file, "--json", "sell", "2.5", "--price", "3.75"))
    order = sold["details"]["order"]
    assert sold["details"]["amount"] == 2_500_000_000 and sold["details"]["price"] == 3_750_000
    book = await wallet(buyer_file, "orders", "--book")
    assert order in book and "2.500" in book
    await wallet(buyer_file, "buy", order, "1")
    refused = await wallet(buyer_file, "cancel", order, ok=False)
    assert "NotSeller" in refused
    await wallet(seller_file, "cancel", order)
    balance = json.loads(await wallet(seller_file, "--json", "balance"))["balances"]
    assert balance["grid"] == 4 * KWH and balance["grid_in_escrow"] == 0
    assert balance["thbc"] > 0
    buyer_balance = await wallet(buyer_file, "balance")
    assert "GRID 1.000000000 kWh" in buyer_balance
    assert "payout CLI-PAYOUT-1" in await wallet(buyer_file, "redeem", "10", "--payout", "CLI-PAYOUT-1")
    assert json.loads(await wallet(buyer_file, "--json", "balance"))["balances"]["thbc"] < 90 * THBC
    records = (await api.http.get(f"/payments?wallet={buyer.address}")).json()["items"]
    assert (records[0]["kind"], records[0]["amount"], records[0]["reference"]) == ("REDEEM", 10 * THBC,
                                                                                   "CLI-PAYOUT-1")
    nobody = tmp_path / "nobody.json"
    assert "cannot read keypair file" in await wallet(nobody, "address", ok=False)
    await wallet(nobody, "new")
    assert "not signed in" in await wallet(nobody, "balance", ok=False)


async def test_wallet_cli_registers_a_meter_and_operators_act_through_it(api: RunningApi, tmp_path: Path) -> None:
    """A prosumer registers a meter with its gateway's key; the grid operator activates it and the payment
    gateway issues THBC — each signing with its own wallet file (what `gridtokenx demo` does)."""
    from programs.registry import client as registry

    prosumer_file, consumer_file = tmp_path / "prosumer.json", tmp_path / "consumer.json"
    operator_file, gateway_file = tmp_path / "operator.json", tmp_path / "payment-gateway.json"
    write_keypair_file(operator_file, api.admin)
    write_keypair_file(gateway_file, api.deployment.payment_gateway)
    for path in (prosumer_file, consumer_file):
        await wallet(path, "new")
    for path in (prosumer_file, consumer_file, operator_file, gateway_file):
        await api.chain.fund(load_keypair_file(path).pubkey(), 10**9)
        await wallet(path, "login", api.url)
    await wallet(prosumer_file, "register", "Rooftop", "--kind", "prosumer")
    await wallet(consumer_file, "register", "Cafe", "--kind", "consumer")
    gateway_key = "ab" * 32
    assert "pending until an operator activates it" in await wallet(prosumer_file, "meters", "register", "roof-1",
                                                                     "--public-key", gateway_key)
    d = api.deployment
    meter = await registry.fetch_meter(api.chain, d.programs.registry, "roof-1")
    assert meter is not None and meter.status == registry.MeterStatus.PENDING and meter.meter_key.hex() == gateway_key
    refused = await wallet(prosumer_file, "meters", "activate", "roof-1", ok=False)
    assert "operator" in refused.lower(), refused  # not an operator wallet: refused before anything is signed
    await wallet(operator_file, "meters", "activate", "roof-1")
    meter = await registry.fetch_meter(api.chain, d.programs.registry, "roof-1")
    assert meter is not None and meter.status == registry.MeterStatus.ACTIVE
    consumer = str(load_keypair_file(consumer_file).pubkey())
    issued = json.loads(await wallet(gateway_file, "--json", "issue", consumer, "25.5", "--reference",
                                   "BANK-CLI-1"))
    assert issued["action"] == "payments.issue"
    assert json.loads(await wallet(consumer_file, "--json", "balance"))["balances"]["thbc"] == 25_500_000
    assert "--reference" in await wallet(gateway_file, "issue", consumer, "1", ok=False)
