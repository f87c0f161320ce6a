"""The market over real HTTP, PostgreSQL and the chain: registration, orders (create, partial buy, buy
the rest, cancel, expire), refusals before signing, and the signed-transaction checks. Balances are
checked on chain and in D3-D5 (written by the backend's indexer, never by the api)."""

from __future__ import annotations

import base64
import itertools
import struct
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from nacl.signing import SigningKey
from solders.pubkey import Pubkey
from solders.transaction import Transaction
from spl.token.instructions import get_associated_token_address

from backend.cranks import Cranks
from gridtokenx.reading import Reading, sign
from programs.energy_token import client as energy
from programs.energy_token.bootstrap import register_active_meter
from programs.payments import client as payments
from programs.trading import client as trading
from programs.trading.sandbox import token_amount
from tests.backend.api.api_support import RunningApi, TestWallet, running_api
from tests.support.fixtures import pg_url  # noqa: F401

pytestmark = [pytest.mark.postgres, pytest.mark.chain]

KWH = 10**9
THBC = 10**6
PRICE = 3_500_000


@pytest.fixture
async def api(pg_url: str, tmp_path: Path) -> AsyncIterator[RunningApi]:  # noqa: F811
    async with running_api(pg_url, tmp_path) as running:
        yield running


async def registered(api: RunningApi, kind: str, name: str) -> TestWallet:
    wallet = TestWallet()
    await api.chain.fund(wallet.key.pubkey(), 10**9)  # rent for its accounts
    await wallet.sign_in(api.http)
    await wallet.act(api.http, "POST", "/users", {"name": name, "kind": kind})
    return wallet


_seed_meters = itertools.count(1)


async def seed_grid(api: RunningApi, wallet: TestWallet, amount: int) -> None:
    """GRID minted to ``wallet`` as the backend's minter does it (minting has its own tests): a meter of
    its own, activated by the registry authority, a baseline and a reading ``amount`` above it settled
    with their gateway signatures; then the indexer has recorded it."""
    gateway, meter_id = SigningKey.generate(), f"seed-{next(_seed_meters)}"
    d = api.deployment
    await register_active_meter(api.chain, d.grid, api.admin, wallet.key, meter_id, bytes(gateway.verify_key))
    for seq, export_wh in ((1, 0), (2, amount // 10**6)):  # 10**6 GRID base units per Wh
        signed = sign(Reading(meter_id, seq, 1_760_000_000_000 + seq * 1000, 0, export_wh), gateway)
        (await energy.settle_signed_reading(api.chain, d.grid.energy_program, d.grid.registry_program, d.grid.mint,
                                            signed, api.relayer)).raise_for_failure()
    await api.indexed()


async def issue_thbc(api: RunningApi, wallet: TestWallet, amount: int, reference: str) -> None:
    operator = TestWallet(api.deployment.payment_gateway)
    await api.chain.fund(operator.key.pubkey(), 10**9)
    await operator.sign_in(api.http)
    await operator.act(api.http, "POST", "/payments/issue",
                       {"wallet": wallet.address, "amount": amount, "reference": reference})


async def chain_balance(api: RunningApi, wallet: TestWallet, mint: Pubkey) -> int:
    return await token_amount(api.chain, get_associated_token_address(wallet.key.pubkey(), mint))


async def me(api: RunningApi, wallet: TestWallet) -> dict[str, Any]:
    reply = await api.http.get("/users/me", headers=wallet.headers())
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


def refused(reply: Any, status: int, code: str) -> None:
    assert reply.status_code == status, reply.text
    assert reply.json()["error"]["code"] == code, reply.text


async def test_registration_stores_the_profile_once_the_chain_confirms(api: RunningApi) -> None:
    wallet = TestWallet()
    await api.chain.fund(wallet.key.pubkey(), 10**9)
    await wallet.sign_in(api.http)
    prepared = (await api.http.post("/users", json={"name": "Somchai", "kind": "prosumer"},
                                    headers=wallet.headers())).json()
    assert (await me(api, wallet))["profile"] is None  # nothing stored before the chain confirms
    assert (await wallet.sign_and_submit(api.http, prepared)).status_code == 200
    profile = (await me(api, wallet))["profile"]
    assert profile["name"] == "Somchai" and profile["kind"] == "prosumer" and profile["pda"]
    assert await api.chain.get_account(Pubkey.from_string(profile["pda"])) is not None
    refused(await api.http.post("/users", json={"name": "Again", "kind": "consumer"}, headers=wallet.headers()),
            409, "AlreadyRegistered")
    other = TestWallet()
    await other.sign_in(api.http)
    refused(await api.http.post("/users", json={"name": "somchai", "kind": "consumer"}, headers=other.headers()),
            409, "name_taken")
    refused(await api.http.get("/users/not-a-wallet"), 400, "bad_wallet")


async def test_order_create_partial_buy_rest_and_balances(api: RunningApi) -> None:
    seller = await registered(api, "prosumer", "Seller")
    buyer = await registered(api, "consumer", "Buyer")
    await seed_grid(api, seller, 10 * KWH)
    await issue_thbc(api, buyer, 1000 * THBC, "DEP-0001")
    assert (await me(api, buyer))["balances"]["thbc"] == 1000 * THBC

    created = await seller.act(api.http, "POST", "/orders", {"amount": 4 * KWH, "price": PRICE})
    order = created["details"]["order"]
    grid, thbc = api.deployment.grid.mint, api.deployment.thbc_mint
    assert await chain_balance(api, seller, grid) == 6 * KWH
    vault = trading.vault_address(api.deployment.programs.trading, Pubkey.from_string(order))[0]
    assert await token_amount(api.chain, vault) == 4 * KWH
    assert (await me(api, seller))["balances"] == {"grid": 6 * KWH, "thbc": 0, "grid_in_escrow": 4 * KWH}
    book = (await api.http.get("/orders/book")).json()
    assert [o["address"] for o in book["items"]] == [order] and book["items"][0]["state"] == "ACTIVE"

    bought = await buyer.act(api.http, "POST", f"/orders/{order}/buy", {"amount": 1 * KWH})
    cost = trading.trade_cost(KWH, PRICE)
    fee = trading.trade_fee(cost, api.deployment.fee_bps)
    assert bought["details"]["cost"] == cost
    assert await chain_balance(api, buyer, grid) == KWH
    assert await chain_balance(api, buyer, thbc) == 1000 * THBC - cost
    assert await chain_balance(api, seller, thbc) == cost - fee
    d4 = (await api.http.get(f"/orders/{order}")).json()
    assert d4["state"] == "PARTIALLY_FILLED" and d4["remaining"] == 3 * KWH
    [trade] = d4["trades"]
    assert (trade["buyer"], trade["seller"], trade["amount"], trade["cost"], trade["fee"]) == (
        buyer.address, seller.address, KWH, cost, fee)
    assert (await me(api, buyer))["balances"] == {"grid": KWH, "thbc": 1000 * THBC - cost, "grid_in_escrow": 0}
    assert (await me(api, seller))["balances"] == {"grid": 6 * KWH, "thbc": cost - fee, "grid_in_escrow": 3 * KWH}

    await buyer.act(api.http, "POST", f"/orders/{order}/buy", {})  # the rest
    assert (await api.http.get(f"/orders/{order}")).json()["state"] == "FILLED"
    assert await chain_balance(api, buyer, grid) == 4 * KWH
    assert (await api.http.get("/orders/book")).json()["items"] == []
    mine = (await api.http.get("/trades/mine", headers=buyer.headers())).json()["items"]
    assert [t["amount"] for t in mine] == [3 * KWH, KWH]  # newest first
    refused(await api.http.post(f"/orders/{order}/buy", json={}, headers=buyer.headers()), 422, "OrderNotActive")


async def test_refusals_before_anything_is_signed(api: RunningApi) -> None:
    seller = await registered(api, "prosumer", "Seller")
    broke = await registered(api, "consumer", "Broke")
    await seed_grid(api, seller, 2 * KWH)
    h = seller.headers()
    refused(await api.http.post("/orders", json={"amount": 0, "price": PRICE}, headers=h), 422, "ZeroAmount")
    refused(await api.http.post("/orders", json={"amount": KWH, "price": 0}, headers=h), 422, "ZeroPrice")
    refused(await api.http.post("/orders", json={"amount": 3 * KWH, "price": PRICE}, headers=h),
            422, "InsufficientBalance")
    refused(await api.http.post("/orders", json={"amount": KWH, "price": PRICE, "expires_at": 1}, headers=h),
            422, "ExpiryInPast")
    order = (await seller.act(api.http, "POST", "/orders", {"amount": 2 * KWH, "price": PRICE}))["details"]["order"]
    refused(await api.http.post(f"/orders/{order}/buy", json={"amount": KWH}, headers=h), 422, "SelfTrade")
    refused(await api.http.post(f"/orders/{order}/buy", json={"amount": KWH}, headers=broke.headers()),
            422, "InsufficientBalance")
    refused(await api.http.post(f"/orders/{order}/buy", json={"amount": 5 * KWH}, headers=broke.headers()),
            422, "AmountExceedsRemaining")
    refused(await api.http.post(f"/orders/{order}/cancel", headers=broke.headers()), 403, "NotSeller")
    refused(await api.http.post("/orders", json={"amount": KWH, "price": PRICE}), 401, "not_signed_in")
    stranger = TestWallet()
    await stranger.sign_in(api.http)
    refused(await api.http.post("/orders", json={"amount": KWH, "price": PRICE}, headers=stranger.headers()),
            403, "not_registered")
    # none of it reached the chain: one order, untouched
    assert (await api.http.get(f"/orders/{order}")).json()["remaining"] == 2 * KWH


async def test_signed_transaction_must_be_the_one_built_for_this_wallet(api: RunningApi) -> None:
    seller = await registered(api, "prosumer", "Seller")
    other = await registered(api, "consumer", "Other")
    await seed_grid(api, seller, 2 * KWH)
    prepared = (await api.http.post("/orders", json={"amount": KWH, "price": PRICE},
                                    headers=seller.headers())).json()
    # another wallet cannot submit it
    stolen = await api.http.post("/transactions", headers=other.headers(),
                                 json={"intent": prepared["intent"], "transaction": seller.sign(prepared)})
    refused(stolen, 403, "not_your_transaction")
    # a transaction changed after it was built (another price) is refused, even signed by the seller
    tx = Transaction.from_bytes(base64.b64decode(prepared["transaction"]))
    changed_ix = trading.create_order(api.deployment.programs.trading, seller.key.pubkey(),
                                      get_associated_token_address(seller.key.pubkey(), api.deployment.grid.mint),
                                      api.deployment.grid.mint, prepared["details"]["order_id"], KWH, 1,
                                      prepared["details"]["expires_at"], max_fee_bps=prepared["details"]["max_fee_bps"])
    from solders.message import Message

    forged = Message.new_with_blockhash([changed_ix], tx.message.account_keys[0], tx.message.recent_blockhash)
    forged_prepared = {**prepared, "transaction": base64.b64encode(bytes(Transaction.new_unsigned(forged))).decode()}
    refused(await seller.sign_and_submit(api.http, forged_prepared), 400, "transaction_changed")
    # unsigned: refused
    unsigned = await api.http.post("/transactions", headers=seller.headers(),
                                   json={"intent": prepared["intent"], "transaction": prepared["transaction"]})
    refused(unsigned, 400, "missing_signature")
    # the genuine one goes through, once
    assert (await seller.sign_and_submit(api.http, prepared)).status_code == 200
    again = await seller.sign_and_submit(api.http, prepared)
    assert again.status_code == 422 and again.json()["error"]["code"] == "AlreadyProcessed"


async def test_cancel_and_expire_return_the_escrow(api: RunningApi) -> None:
    seller = await registered(api, "prosumer", "Seller")
    buyer = await registered(api, "consumer", "Buyer")
    await seed_grid(api, seller, 5 * KWH)
    await issue_thbc(api, buyer, 100 * THBC, "DEP-0002")
    grid = api.deployment.grid.mint
    cancel_me = (await seller.act(api.http, "POST", "/orders", {"amount": 2 * KWH, "price": PRICE}))["details"]
    await seller.act(api.http, "POST", f"/orders/{cancel_me['order']}/cancel")
    assert (await api.http.get(f"/orders/{cancel_me['order']}")).json()["state"] == "CANCELLED"
    assert await chain_balance(api, seller, grid) == 5 * KWH
    assert (await me(api, seller))["balances"]["grid"] == 5 * KWH

    now = api.chain.now()
    expiring = (await seller.act(api.http, "POST", "/orders",
                                 {"amount": 3 * KWH, "price": PRICE, "expires_at": now + 60}))["details"]
    await buyer.act(api.http, "POST", f"/orders/{expiring['order']}/buy", {"amount": KWH})
    api.chain.advance_time(61)
    # The backend's crank finds the order past its time in D4 and sends ExpireOrder; the indexer records it.
    cranks = Cranks(api.storage, api.chain, api.deployment.deployment, payer=api.relayer)
    assert (await cranks.run_once()).orders_expired == [expiring["order"]]
    await api.indexed()
    d4 = (await api.http.get(f"/orders/{expiring['order']}")).json()
    assert d4["state"] == "EXPIRED"
    assert await chain_balance(api, seller, grid) == 4 * KWH  # 5 - 3 offered + 2 unsold returned
    assert (await me(api, seller))["balances"] == {"grid": 4 * KWH, "thbc": d4["proceeds"], "grid_in_escrow": 0}
    mine = (await api.http.get("/orders/mine?state=expired,cancelled", headers=seller.headers())).json()["items"]
    assert {o["state"] for o in mine} == {"EXPIRED", "CANCELLED"}


async def test_fee_limit_the_seller_agreed_to_is_kept(api: RunningApi) -> None:
    seller = await registered(api, "prosumer", "Seller")
    await seed_grid(api, seller, 2 * KWH)
    done = await seller.act(api.http, "POST", "/orders", {"amount": KWH, "price": PRICE, "max_fee_bps": 25})
    assert (await api.http.get(f"/orders/{done['details']['order']}")).json()["fee_bps"] == api.deployment.fee_bps
    prepared = (await api.http.post("/orders", json={"amount": KWH, "price": PRICE, "max_fee_bps": 10},
                                    headers=seller.headers())).json()
    refused(await seller.sign_and_submit(api.http, prepared), 422, "FeeAboveLimit")


async def test_lists_are_paginated_with_cursors(api: RunningApi) -> None:
    seller = await registered(api, "prosumer", "Seller")
    await seed_grid(api, seller, 10 * KWH)
    for price in (5, 3, 4, 3):
        await seller.act(api.http, "POST", "/orders", {"amount": KWH, "price": price * THBC})
    seen: list[int] = []
    cursor = None
    while True:
        url = "/orders/book?limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = (await api.http.get(url)).json()
        seen += [o["price"] for o in page["items"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == [3 * THBC, 3 * THBC, 4 * THBC, 5 * THBC]
    refused(await api.http.get("/orders/book?cursor=!!"), 400, "bad_cursor")
    filtered = (await api.http.get(f"/orders/book?max_price={3 * THBC}")).json()["items"]
    assert len(filtered) == 2


async def test_deposit_reference_is_used_once_and_redemption_burns(api: RunningApi) -> None:
    buyer = await registered(api, "consumer", "Buyer")
    thbc = api.deployment.thbc_mint
    await issue_thbc(api, buyer, 100 * THBC, "DEP-ONCE")
    deposit = await payments.fetch_deposit(api.chain, api.deployment.programs.payments, "DEP-ONCE")
    assert deposit is not None and (deposit.payer, deposit.amount) == (buyer.key.pubkey(), 100 * THBC)
    operator = TestWallet(api.deployment.payment_gateway)
    await operator.sign_in(api.http)

    def issue(reference: str, wallet: TestWallet = operator, amount: int = 5 * THBC) -> Any:
        return api.http.post("/payments/issue", headers=wallet.headers(),
                             json={"wallet": buyer.address, "amount": amount, "reference": reference})

    # Refused before anything is signed: from D7 ...
    refused(await issue("DEP-ONCE"), 409, "ReferenceAlreadyUsed")
    # ... and from the deposit record on chain while D7 lags behind it (the indexer has not caught up).
    await api.storage.execute("DELETE FROM payments WHERE reference = 'DEP-ONCE'")
    refused(await issue("DEP-ONCE"), 409, "ReferenceAlreadyUsed")
    # Two issues of one new reference (other amounts, so two transactions) built before either went
    # through: the chain takes the first only.
    first, second = (await issue("DEP-RACE")).json(), (await issue("DEP-RACE", amount=6 * THBC)).json()
    assert (await operator.sign_and_submit(api.http, first)).status_code == 200
    before = await chain_balance(api, buyer, thbc)
    refused(await operator.sign_and_submit(api.http, second), 422, "ReferenceAlreadyUsed")
    assert await chain_balance(api, buyer, thbc) == before == 105 * THBC
    # Only the payments program's operator issues: a wallet that is no operator, and an operator wallet of
    # the api (the admin) that the program does not name.
    await buyer.sign_in(api.http)
    refused(await issue("DEP-X", buyer), 403, "not_operator")
    admin = TestWallet(api.admin)
    await admin.sign_in(api.http)
    refused(await issue("DEP-X", admin), 403, "NotOperator")
    refused(await issue("has space"), 422, "invalid_request")

    supply_before = await _supply(api, thbc)
    redeemed = await buyer.act(api.http, "POST", "/payments/redeem", {"amount": 30 * THBC, "payout_reference": "PAY-7"})
    assert redeemed["details"]["payout_reference"] == "PAY-7"
    assert await chain_balance(api, buyer, thbc) == 75 * THBC
    assert await _supply(api, thbc) == supply_before - 30 * THBC  # burned, not moved
    refused(await api.http.post("/payments/redeem", json={"amount": 76 * THBC}, headers=buyer.headers()),
            422, "InsufficientBalance")
    generated = await buyer.act(api.http, "POST", "/payments/redeem", {"amount": THBC})
    payout = generated["details"]["payout_reference"]
    assert payout.startswith("payout-")
    records = (await api.http.get(f"/payments?wallet={buyer.address}")).json()["items"]
    assert [(p["kind"], p["amount"], p["reference"]) for p in records] == [
        ("REDEEM", THBC, payout), ("REDEEM", 30 * THBC, "PAY-7"), ("ISSUE", 5 * THBC, "DEP-RACE")]
    assert (await me(api, buyer))["balances"]["thbc"] == 74 * THBC


async def test_consumed_grid_is_burned_and_recorded(api: RunningApi) -> None:
    consumer = await registered(api, "consumer", "Consumer")
    await seed_grid(api, consumer, 2 * KWH)
    grid = api.deployment.grid.mint
    supply_before = await _supply(api, grid)
    refused(await api.http.post("/payments/consume", json={"amount": 3 * KWH}, headers=consumer.headers()),
            422, "InsufficientBalance")
    done = await consumer.act(api.http, "POST", "/payments/consume", {"amount": KWH})
    assert await chain_balance(api, consumer, grid) == KWH
    assert await _supply(api, grid) == supply_before - KWH
    [record] = (await api.http.get(f"/payments?wallet={consumer.address}")).json()["items"]
    assert (record["kind"], record["asset"], record["amount"], record["signature"]) == (
        "CONSUME", "GRID", KWH, done["signature"])
    assert (await me(api, consumer))["balances"]["grid"] == KWH


async def _supply(api: RunningApi, mint: Pubkey) -> int:
    account = await api.chain.get_account(mint)
    assert account is not None
    return int(struct.unpack_from("<Q", bytes(account.data), 36)[0])


async def test_backend_pays_fees_but_signs_only_as_fee_payer(pg_url: str, tmp_path: Path) -> None:  # noqa: F811
    from solders.keypair import Keypair

    payer = Keypair()
    async with running_api(pg_url, tmp_path, fee_payer=payer) as api:
        await api.chain.fund(payer.pubkey(), 10**9)
        seller = await registered(api, "prosumer", "Seller")
        await seed_grid(api, seller, 2 * KWH)
        prepared = (await api.http.post("/orders", json={"amount": KWH, "price": PRICE},
                                        headers=seller.headers())).json()
        assert prepared["fee_payer"] == str(payer.pubkey())
        assert prepared["signers"] == [str(payer.pubkey()), seller.address]
        # without the seller's signature the backend does not add its own
        unsigned = await api.http.post("/transactions", headers=seller.headers(),
                                       json={"intent": prepared["intent"], "transaction": prepared["transaction"]})
        refused(unsigned, 400, "missing_signature")
        payer_before = api.chain.svm.get_balance(payer.pubkey())
        seller_before = api.chain.svm.get_balance(seller.key.pubkey())
        assert (await seller.sign_and_submit(api.http, prepared)).status_code == 200
        assert payer_before - api.chain.svm.get_balance(payer.pubkey()) == 2 * 5000  # two signatures' fees
        rent = seller_before - api.chain.svm.get_balance(seller.key.pubkey())  # order + vault rent only
        assert rent == (await api.chain.minimum_balance(trading.ORDER_LEN)) + await api.chain.minimum_balance(165)
